#!/bin/sh
# Builds the two artifacts cairn-package.yaml names, beside it:
#   hello-VERSION.tar.gz               the source (src/)
#   hello-VERSION-linux-amd64.tar.gz   the "binary": bin/hello, version stamped in
set -eu
cd "$(dirname "$0")"
version=$(sed -n 's/^version: *//p' cairn-package.yaml)
tar -czf "hello-$version.tar.gz" src
rm -rf build && mkdir -p build/bin
sed "s/@VERSION@/$version/" src/hello.sh > build/bin/hello
chmod 755 build/bin/hello
tar -czf "hello-$version-linux-amd64.tar.gz" -C build bin
rm -rf build
echo "built hello-$version.tar.gz and hello-$version-linux-amd64.tar.gz"
