#!/bin/sh
# Installs every build and test dependency of keyplane from Debian 12 packages.
# Run as root (or with sudo available) on a fresh machine: sh scripts/setup-debian.sh
set -eu

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo sh "$0" "$@"
    fi
    echo "setup-debian.sh: run as root (it calls apt-get install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    build-essential cmake ninja-build pkg-config clang clang-format clang-tidy cppcheck gcovr \
    libclang-rt-14-dev \
    libssl-dev openssl \
    libyaml-dev libjansson-dev libcurl4-openssl-dev libexpat1-dev \
    libp11-kit-dev p11-kit softhsm2 opensc \
    libcmocka-dev valgrind time \
    python3 python3-cryptography python3-botocore python3-boto3 python3-azure awscli \
    ca-certificates
echo "setup-debian.sh: dependencies installed"
