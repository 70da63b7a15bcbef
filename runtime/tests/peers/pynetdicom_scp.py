"""A Storage SCP built on pynetdicom: Ward's tests use it as a PACS that is not DCMTK.

Usage: pynetdicom_scp.py PORT AE_TITLE OUT_DIR

Every received instance is written to OUT_DIR/<SOPInstanceUID>.dcm (through a temporary
name, so a file that is there is whole). Prints "listening" once the socket is bound and
runs until its standard input closes.
"""
import os
import sys

from pynetdicom import AE, AllStoragePresentationContexts, evt


def main():
    port, title, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        name = os.path.join(out, f"{ds.SOPInstanceUID}.dcm")
        ds.save_as(name + ".part", enforce_file_format=True)
        os.replace(name + ".part", name)
        return 0x0000

    ae = AE(ae_title=title)
    ae.supported_contexts = AllStoragePresentationContexts
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    print("listening", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
