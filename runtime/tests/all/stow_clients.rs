//! STOW-RS as DICOMweb clients see it: the real `dicomweb-client` package (pinned in
//! `.ci/run`) stores instances in a running `ward serve`, and pydicom reads the raw answer with
//! `Dataset.from_json`. Both must parse the answer and find in it the instances stored and
//! refused, and Ward's payload and job in its private block.

use crate::service::{Server, RAD_OP};
use crate::support::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The client side, in Python: stores the CT files given after the URL and token with
/// `DICOMwebClient.store_instances`, together with one instance of a SOP class that is not a
/// storage class (Verification); then posts the same files and a part that is not DICOM by
/// hand, and reads that raw answer with `Dataset.from_json`. Prints what each read.
const CLIENT: &str = r#"
import copy, json, sys
import pydicom, requests
from pydicom.uid import generate_uid
from dicomweb_client.api import DICOMwebClient

url, token, files = sys.argv[1], sys.argv[2], sys.argv[3:]
datasets = [pydicom.dcmread(f) for f in files]
odd = copy.deepcopy(datasets[0])
odd.SOPClassUID = "1.2.840.10008.1.1"
odd.file_meta.MediaStorageSOPClassUID = odd.SOPClassUID
odd.SOPInstanceUID = generate_uid()
odd.file_meta.MediaStorageSOPInstanceUID = odd.SOPInstanceUID

def values(element):
    v = element.value
    if v is None or v == "":
        return []
    return list(v) if isinstance(v, pydicom.multival.MultiValue) else [v]

def ward_block(ds):
    block = ds.private_block(0x0009, "WARD 1.0")
    return block[0x01].value, values(block[0x02])

client = DICOMwebClient(url=url + "/v1/dicomweb", headers={"Authorization": "Bearer " + token})
answer = client.store_instances(datasets + [odd])
payload, jobs = ward_block(answer)
report = {
    "client": {
        "stored": [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence],
        "classes": sorted({item.ReferencedSOPClassUID for item in answer.ReferencedSOPSequence}),
        "failed": [[item.ReferencedSOPInstanceUID, int(item.FailureReason)] for item in answer.FailedSOPSequence],
        "odd": odd.SOPInstanceUID,
        "payload": payload,
        "jobs": jobs,
    }
}

boundary = "ward-client-test-5e1a"
body = b""
for f in files:
    body += b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(f, "rb").read() + b"\r\n"
body += b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--" + boundary.encode() + b"--\r\n"
raw = requests.post(
    url + "/v1/dicomweb/studies",
    data=body,
    headers={
        "Authorization": "Bearer " + token,
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=' + boundary,
    },
)
ds = pydicom.Dataset.from_json(raw.text)
payload, jobs = ward_block(ds)
report["raw"] = {
    "status": raw.status_code,
    "content_type": raw.headers["Content-Type"],
    "stored": [item.ReferencedSOPInstanceUID for item in ds.ReferencedSOPSequence],
    "failed": [int(item.FailureReason) for item in ds.FailedSOPSequence],
    "payload": payload,
    "jobs": jobs,
    "payload_header": raw.headers.get("Ward-Payload"),
    "jobs_header": raw.headers.get("Ward-Jobs"),
}
print(json.dumps(report))
"#;

/// The SOP Instance UID of a DICOM file, as dicom-rs reads it.
fn sop_instance(file: &PathBuf) -> String {
    dicom_object::open_file(file)
        .unwrap()
        .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[test]
fn dicomweb_client_and_pydicom_read_the_stow_rs_answer() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let dir = tempdir();
    let series = ward::sample::ct_series::write_ct_series(
        dir.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 3,
            size: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let mut expected: Vec<String> = series.files.iter().map(sop_instance).collect();
    expected.sort();

    let out = Command::new("python3")
        .args(["-c", CLIENT, &server.url, RAD_OP])
        .args(&series.files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the client script failed (dicomweb-client is needed: pip install dicomweb-client==0.61.2):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the script's report");

    // dicomweb-client: three stored, the Verification instance refused by name.
    let client = &report["client"];
    let mut stored: Vec<String> = serde_json::from_value(client["stored"].clone()).unwrap();
    stored.sort();
    assert_eq!(stored, expected, "{report}");
    assert_eq!(
        client["classes"],
        serde_json::json!(["1.2.840.10008.5.1.4.1.1.2"]),
        "CT Image Storage: {report}"
    );
    assert_eq!(
        client["failed"],
        serde_json::json!([[client["odd"].clone(), 0x0122]]),
        "the Verification instance is named with 0x0122: {report}"
    );
    let payload = client["payload"].as_str().expect("payload in (0009,1001)");
    let kept = std::fs::read_dir(server.state.join("payloads").join(payload))
        .unwrap()
        .count();
    assert_eq!(kept, 3, "the payload named holds the stored instances");
    let job = client["jobs"][0].as_str().expect("the STOW pipeline's job");
    let job = server.wait(RAD_OP, job);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["payload_id"].as_str(), Some(payload), "{job}");

    // pydicom on the raw answer: the headers and the private block agree.
    let raw = &report["raw"];
    assert_eq!(raw["status"], 202, "{report}");
    assert_eq!(raw["content_type"], "application/dicom+json");
    let mut stored: Vec<String> = serde_json::from_value(raw["stored"].clone()).unwrap();
    stored.sort();
    assert_eq!(stored, expected, "{report}");
    assert_eq!(raw["failed"], serde_json::json!([0xC000]), "{report}");
    assert_eq!(raw["payload_header"], raw["payload"], "{report}");
    assert_ne!(
        raw["payload"], client["payload"],
        "a new payload per request"
    );
    assert_eq!(raw["jobs"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(raw["jobs_header"], raw["jobs"][0], "{report}");
}
