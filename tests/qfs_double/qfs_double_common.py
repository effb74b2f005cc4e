"""What the stand-ins share: QFS 2.2.8's binaries link these Debian libraries (measured with ldd on
Debian 12); without one the dynamic loader stops them before main(), with this message."""
import subprocess
import sys

LINKED = ("libboost_regex.so.1.74.0", "libkrb5.so.3", "libz.so.1", "libssl.so.3", "libcrypto.so.3")


def need_linked_libraries():
    known = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for name in LINKED:
        if name not in known:
            sys.stderr.write("%s: error while loading shared libraries: %s: cannot open shared object file: "
                             "No such file or directory\n" % (sys.argv[0], name))
            sys.exit(127)
