"""A Storage SCU built on pynetdicom: Ward's tests use it as a modality that is not DCMTK.

Usage: pynetdicom_scu.py HOST PORT CALLED_AE FILE...

Proposes each file's SOP class in its own transfer syntax, sends every file in one
association and prints "FILE 0xSTATUS" per file. Exits 1 if the association is refused or
any status is not success.
"""
import sys

import pydicom
from pynetdicom import AE


def main():
    host, port, called = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files = sys.argv[4:]
    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title="PYNETDICOM")
    # pynetdicom aborts an association whose peer takes over 30 s to answer; on a busy test
    # machine that is a slow machine, not a broken peer, so the test waits far longer.
    ae.acse_timeout = 300
    ae.dimse_timeout = 300
    ae.network_timeout = 300
    for pair in sorted({(d.SOPClassUID, d.file_meta.TransferSyntaxUID) for d in datasets}):
        ae.add_requested_context(pair[0], pair[1])
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        print("association refused or aborted", flush=True)
        sys.exit(1)
    failed = False
    for name, ds in zip(files, datasets):
        if not assoc.is_established:
            print(f"{name}: the association ended before it was sent", flush=True)
            sys.exit(1)
        status = assoc.send_c_store(ds)
        code = status.Status if status else None
        print(f"{name} {'none' if code is None else f'0x{code:04X}'}", flush=True)
        failed |= code != 0x0000
    assoc.release()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
