//! The streaming CT example against its volume twin: the same smoothed volume, byte for
//! byte, and the same segmentation, with the streamed filter holding only a few slices.

use crate::support::*;
use ward::jobs::JobStatus;
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

#[test]
fn streaming_through_ports_gives_the_volume_pipelines_result() {
    let payload = tempdir();
    let slices = 40;
    write_ct_series(
        payload.path(),
        &CtSeriesOptions {
            slices,
            size: 128,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    components_dir();
    let example = |name: &str| repo_root().join(format!("examples/{name}/pipeline.yaml"));
    let (streamed, streamed_jobs) = run_pipeline(&example("ct-streaming"), payload.path(), &[]);
    assert_eq!(streamed.status, JobStatus::Succeeded, "{streamed:#?}");
    let (volumes, volume_jobs) = run_pipeline(&example("ct-smoothing"), payload.path(), &[]);
    assert_eq!(volumes.status, JobStatus::Succeeded, "{volumes:#?}");

    let read = |jobs: &tempfile::TempDir, path: &str| {
        let file = jobs.path().join("job/results").join(path);
        std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    for file in ["volume.raw", "volume.json"] {
        assert!(
            read(&streamed_jobs, &format!("assemble/volume/{file}"))
                == read(&volume_jobs, &format!("smooth/volume/{file}")),
            "{file}: the streamed and the volume smoothing differ"
        );
    }
    assert_eq!(
        read(&streamed_jobs, "segment/labels/stats.json"),
        read(&volume_jobs, "segment/labels/stats.json"),
        "the same segmentation"
    );
    assert_ne!(
        read(&streamed_jobs, "assemble/volume/volume.raw"),
        read(&streamed_jobs, "dicom-reader/volume/volume.raw"),
        "the smoothing did something"
    );

    // The header and one message per slice went through each of the two ports.
    assert_eq!(streamed.ports.len(), 2, "{:#?}", streamed.ports);
    for channel in &streamed.ports {
        assert_eq!(channel.messages, u64::from(slices) + 1, "{channel:?}");
        assert!(channel.peak_buffered_messages <= 4, "{channel:?}");
    }
    let peak = |s: &ward::jobs::JobSummary| s.stage("smooth").unwrap().memory_peak_bytes.unwrap();
    assert!(
        peak(&streamed) * 2 < peak(&volumes),
        "the streamed filter holds a few slices, not the volume: {} vs {} bytes",
        peak(&streamed),
        peak(&volumes)
    );
}
