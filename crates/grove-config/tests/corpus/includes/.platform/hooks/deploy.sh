php bin/console doctrine:migrations:migrate -n
