module consumer
