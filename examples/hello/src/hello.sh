#!/bin/sh
# hello: greets whoever is named, else the world.
echo "hello, ${1:-world} (acme/hello @VERSION@)"
