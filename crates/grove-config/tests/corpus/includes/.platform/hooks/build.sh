set -e
composer install --no-dev
php bin/console assets:install public
