//! What the writer needs from `volume.json`: the source series' identity.

use serde::Deserialize;

/// The identity keys of `volume.json` (written by `dicom-reader`).
#[derive(Debug, Clone, Deserialize)]
pub struct Source {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    #[serde(default)]
    pub frame_of_reference_uid: String,
    #[serde(default)]
    pub patient_id: String,
    #[serde(default)]
    pub patient_name: String,
    #[serde(default)]
    pub sop_class_uid: String,
    #[serde(default)]
    pub modality: String,
    /// FrameTime (ms) of a cine source.
    #[serde(default)]
    pub frame_time_ms: Option<f64>,
    pub sop_instance_uids: Vec<String>,
    /// The frame (1-based) of its instance each slice is, for a multi-frame source.
    #[serde(default)]
    pub frame_numbers: Vec<u32>,
    #[serde(default)]
    pub study_date: String,
    #[serde(default)]
    pub study_time: String,
    #[serde(default)]
    pub study_id: String,
    #[serde(default)]
    pub accession_number: String,
    #[serde(default)]
    pub referring_physician_name: String,
    #[serde(default)]
    pub patient_birth_date: String,
    #[serde(default)]
    pub patient_sex: String,
    #[serde(default)]
    pub study_description: String,
}

impl Source {
    /// The study, series and SOP class `what` must reference are all there.
    pub fn check_identity(&self, what: &str) -> Result<(), ward_stage_sdk::StageError> {
        for (key, value) in [
            ("study_instance_uid", &self.study_instance_uid),
            ("series_instance_uid", &self.series_instance_uid),
            ("sop_class_uid", &self.sop_class_uid),
        ] {
            if value.is_empty() {
                return Err(ward_stage_sdk::invalid_input!(
                    "volume.json: '{key}' is empty; {what} must reference it"
                ));
            }
        }
        Ok(())
    }

    /// Parses the non-geometry keys of a volume header.
    pub fn from_extra(
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, serde_json::Error> {
        Source::deserialize(serde_json::Value::Object(extra.clone()))
    }
}
