"""The emulators' shared machinery, so each emulator holds only its service's behaviour.

    server.py   Service (what an emulator subclasses) and the HTTPS server that runs it
    handler.py  the one request handler: TLS, bodies, answers, faults, corruption, control
    faults.py   fault injection (statuses, throttling, drops, latency, forbidden operations,
                corrupt success answers) and its counters
    control.py  the /_emulator/ endpoints: health, faults, stats, plus an emulator's own
    persist.py  crash-safe state files (atomic JSON writes, one file per record)
    pki.py      the test CA and server certificate
    client.py   the Python client of the control endpoints (ctl scripts and tests)
    emuctl.py   start, stop, steer and list emulators from shell scripts and C test runners

README.md says how a new emulator plugs in. Runs on Debian 12's /usr/bin/python3 (stdlib and
python3-cryptography).
"""
