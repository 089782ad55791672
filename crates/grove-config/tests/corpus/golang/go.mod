module example.com/goapp
