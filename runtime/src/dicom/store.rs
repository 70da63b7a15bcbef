//! Turning received instances into payloads. Each instance is streamed to a temporary file
//! beside its payload, checked, and renamed to `<SOP Instance UID>.dcm` only once whole, so a
//! reader never sees part of one. A payload directory is moved into `payloads/` in one rename
//! when it is complete; until then it lives in `incoming/`.

use super::dimse::status;
use super::instance::inspect_instance;
use dicom_object::meta::FileMetaTableBuilder;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The adapter's directories.
#[derive(Debug, Clone)]
pub struct Storage {
    pub root: PathBuf,
}

impl Storage {
    pub fn open(root: &Path) -> std::io::Result<Storage> {
        for dir in ["incoming", "payloads", "jobs"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        // What a crash left half-received is not a payload.
        for entry in std::fs::read_dir(root.join("incoming"))? {
            let _ = std::fs::remove_dir_all(entry?.path());
        }
        Ok(Storage {
            root: root.to_path_buf(),
        })
    }

    pub fn payloads(&self) -> PathBuf {
        self.root.join("payloads")
    }

    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// Starts a payload named `id`.
    pub fn begin(&self, id: &str) -> std::io::Result<Incoming> {
        let dir = self.root.join("incoming").join(id);
        std::fs::create_dir_all(&dir)?;
        Ok(Incoming {
            dir,
            id: id.to_string(),
            stored: 0,
            duplicates: 0,
            studies: Default::default(),
            next_temp: 0,
        })
    }
}

/// A payload being received.
#[derive(Debug)]
pub struct Incoming {
    dir: PathBuf,
    pub id: String,
    pub stored: usize,
    pub duplicates: usize,
    /// The Study Instance UIDs of what was stored.
    pub studies: std::collections::BTreeSet<String>,
    next_temp: u64,
}

/// Why an instance was refused: the status to answer with, and why.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

fn refused(status: u16, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

/// A UID becomes a file name, so it must be a UID: digits and dots, at most 64.
pub fn check_uid(uid: &str) -> Result<(), Refused> {
    let ok = !uid.is_empty()
        && uid.len() <= 64
        && uid.chars().all(|c| c.is_ascii_digit() || c == '.')
        && !uid.starts_with('.')
        && !uid.contains("..");
    if ok {
        Ok(())
    } else {
        Err(refused(
            status::CANNOT_UNDERSTAND,
            format!("Affected SOP Instance UID '{uid}' is not a valid UID"),
        ))
    }
}

/// One instance being written.
pub struct InstanceWriter {
    temp: PathBuf,
    file: BufWriter<File>,
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
    written: u64,
    limit: u64,
}

impl Incoming {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts an instance: its file meta group (from the command and the negotiated
    /// transfer syntax) then, as it arrives, its data set exactly as sent.
    pub fn begin_instance(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        limit: u64,
    ) -> Result<InstanceWriter, Refused> {
        check_uid(sop_instance)?;
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_instance)
            .transfer_syntax(transfer_syntax)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name("WARD")
            .build()
            .map_err(|e| refused(status::CANNOT_UNDERSTAND, format!("file meta: {e}")))?;
        self.next_temp += 1;
        let temp = self.dir.join(format!(".part-{}", self.next_temp));
        let out_of_resources = |e: std::io::Error| {
            refused(status::OUT_OF_RESOURCES, format!("{}: {e}", temp.display()))
        };
        let mut file =
            BufWriter::with_capacity(1 << 20, File::create(&temp).map_err(out_of_resources)?);
        file.write_all(&[0u8; 128])
            .and_then(|()| file.write_all(b"DICM"))
            .map_err(out_of_resources)?;
        meta.write(&mut file)
            .map_err(|e| refused(status::OUT_OF_RESOURCES, format!("file meta: {e}")))?;
        Ok(InstanceWriter {
            temp,
            file,
            sop_class: sop_class.to_string(),
            sop_instance: sop_instance.to_string(),
            transfer_syntax: transfer_syntax.to_string(),
            written: 0,
            limit,
        })
    }

    /// Checks a received instance and puts it in place; a duplicate of one already stored
    /// is dropped (the first copy is kept).
    pub fn finish_instance(&mut self, mut w: InstanceWriter) -> Result<(), Refused> {
        let result = (|| {
            w.file
                .flush()
                .map_err(|e| refused(status::OUT_OF_RESOURCES, e.to_string()))?;
            drop(w.file);
            let study = check_instance(&w.temp, &w.sop_class, &w.sop_instance, &w.transfer_syntax)?;
            let target = self.dir.join(format!("{}.dcm", w.sop_instance));
            if target.exists() {
                self.duplicates += 1;
                let _ = std::fs::remove_file(&w.temp);
                return Ok(());
            }
            std::fs::rename(&w.temp, &target)
                .map_err(|e| refused(status::OUT_OF_RESOURCES, e.to_string()))?;
            self.stored += 1;
            if !study.is_empty() {
                self.studies.insert(study);
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&w.temp);
        }
        result
    }

    /// Moves the payload into `payloads/` in one rename; none when nothing was stored.
    pub fn complete(self, storage: &Storage) -> std::io::Result<Option<PathBuf>> {
        if self.stored == 0 {
            std::fs::remove_dir_all(&self.dir)?;
            return Ok(None);
        }
        let target = storage.payloads().join(&self.id);
        std::fs::rename(&self.dir, &target)?;
        File::open(storage.payloads())?.sync_all()?;
        Ok(Some(target))
    }

    /// Drops everything received.
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl InstanceWriter {
    /// Appends a fragment of the data set.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Refused> {
        self.written += bytes.len() as u64;
        if self.written > self.limit {
            return Err(refused(
                status::OUT_OF_RESOURCES,
                format!(
                    "the instance is over the {} byte limit (max-instance)",
                    self.limit
                ),
            ));
        }
        self.file
            .write_all(bytes)
            .map_err(|e| refused(status::OUT_OF_RESOURCES, e.to_string()))
    }

    /// Gives up on this instance: its temporary file is removed.
    pub fn abandon(self) {
        let temp = self.temp.clone();
        drop(self);
        let _ = std::fs::remove_file(temp);
    }
}

/// The stored instance must walk to its end within its declared lengths
/// ([`inspect_instance`]) and be the instance the command announced. Returns its Study
/// Instance UID.
fn check_instance(
    path: &Path,
    sop_class: &str,
    sop_instance: &str,
    transfer_syntax: &str,
) -> Result<String, Refused> {
    let facts = inspect_instance(path).map_err(|e| {
        refused(
            status::CANNOT_UNDERSTAND,
            format!("{e}: the data set ({transfer_syntax}) cannot be read"),
        )
    })?;
    let (class, instance, study) = (facts.sop_class, facts.sop_instance, facts.study_instance);
    if class != sop_class || instance != sop_instance {
        return Err(refused(
            status::DATA_SET_MISMATCH,
            format!(
                "the data set is SOP class {class} instance {instance}, the command said {sop_class} {sop_instance}"
            ),
        ));
    }
    Ok(study)
}

/// Ward's implementation class UID in the file meta of what it stores.
pub use crate::sample::ct_series::IMPLEMENTATION_CLASS_UID;
