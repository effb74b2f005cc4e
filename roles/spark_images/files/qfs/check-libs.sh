#!/bin/sh
# check-libs.sh DIR: every shared library in DIR loads here - each library it links resolves, DIR's
# own siblings included - or this fails naming what is missing and how to add it. Run at image build
# (dcspark.dcm.spark_images, QFS block): a missing library stops the build, not a job's first
# qfs:// access with an UnsatisfiedLinkError.
set -eu
dir=$1
missing=$(for lib in "$dir"/*.so*; do
              [ -e "$lib" ] || continue
              LD_LIBRARY_PATH=$dir ldd "$lib" | awk -v lib="${lib##*/}" '/not found/ {print "  " lib " needs " $1}'
          done)
if [ -n "$missing" ]; then
    echo "the QFS native client cannot load in this image; libraries not found:" >&2
    echo "$missing" >&2
    echo "add their Debian packages to spark_images_qfs_packages (or qfs_packages), or the files to $dir" >&2
    exit 1
fi
echo "QFS native client: every library of $dir resolves"
