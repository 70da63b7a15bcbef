//! The render server: pictures of a job's Ward volume (`volume.json` + `volume.raw`, HU) and
//! the label volume beside it, made on demand as PNG — a slice of any plane with any window,
//! the labels overlaid, and a maximum-intensity projection that turns about the patient's
//! long axis. Volumes are read once and kept (bounded by bytes); the PNGs are kept too
//! (bounded), keyed by everything that shapes them, and answered with an `ETag`.

use imaging::image::Image;
use imaging::raw_io;
use imaging::reformat::{self, Plane};
use imaging::render::{self as draw, Rgb};
use imaging::Volume;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes of volumes held at once; a volume bigger than this is not viewed.
pub const VOLUME_BYTES: usize = 1 << 30;
/// Bytes of rendered PNGs held at once.
pub const PNG_BYTES: usize = 64 << 20;
/// Angles the projection turns through (15° apart).
pub const MIP_ANGLES: usize = 24;
/// Bounds on the longest side of a rendered picture.
const MIN_SIDE: usize = 512;
const MAX_SIDE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Read(#[from] raw_io::RawIoError),
    #[error("{path}: the volume is {bytes} bytes, over the viewer's {limit}")]
    TooLarge {
        path: PathBuf,
        bytes: usize,
        limit: usize,
    },
    #[error("{0}")]
    Png(#[from] png::EncodingError),
    #[error("{path}: labels {labels:?} do not match the volume's dims {volume:?}")]
    Geometry {
        path: PathBuf,
        labels: [usize; 3],
        volume: [usize; 3],
    },
}

/// One label's line in the legend: its number, colour and what `stats.json` says of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LegendEntry {
    pub label: u16,
    pub colour: String,
    pub volume_ml: Option<f64>,
    pub voxels: Option<u64>,
}

/// A volume as the viewer holds it.
pub struct Loaded {
    pub ct: Volume<i16>,
    pub labels: Option<Volume<u16>>,
    pub legend: Vec<LegendEntry>,
    /// Identifies the files' contents (sizes and modification times), for ETags.
    pub version: String,
    bytes: usize,
}

impl Loaded {
    /// A volume (and labels of the same dims) held in memory, as the viewer would read it.
    pub fn new(ct: Volume<i16>, labels: Option<Volume<u16>>, version: String) -> Loaded {
        let bytes = ct.data.len() * 2 + labels.as_ref().map_or(0, |l| l.data.len() * 2);
        Loaded {
            ct,
            labels,
            legend: Vec::new(),
            version,
            bytes,
        }
    }
}

/// What is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Slice(Plane, usize),
    /// The projection at angle index `0..MIP_ANGLES`.
    Mip(usize),
}

/// A window in HU: DICOM's linear VOI LUT function (PS3.3 C.11.2.1.2.1) maps it to grey.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

/// Everything a picture depends on besides the files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Picture {
    pub view: View,
    pub window: Window,
    /// 0 (no overlay) to 100.
    pub opacity: u8,
}

impl Picture {
    fn key(&self) -> String {
        format!(
            "{:?}/{}/{}/{}",
            self.view, self.window.center, self.window.width, self.opacity
        )
    }
}

/// The window presets (name, center, width), as the viewer offers them.
pub const PRESETS: &[(&str, f64, f64)] = &[
    ("soft tissue", 40.0, 400.0),
    ("lung", -600.0, 1500.0),
    ("bone", 480.0, 2500.0),
    ("brain", 40.0, 80.0),
];

/// A 65,536-entry table from every i16 to its grey level under `window`.
pub fn voi_lut(window: Window) -> Vec<u8> {
    // The function is defined for width >= 1.
    let w = window.width.max(1.0);
    let c = window.center;
    let low = c - 0.5 - (w - 1.0) / 2.0;
    let high = c - 0.5 + (w - 1.0) / 2.0;
    (i16::MIN..=i16::MAX)
        .map(|x| {
            let x = x as f64;
            if x <= low {
                0
            } else if x > high {
                255
            } else if w <= 1.0 {
                255
            } else {
                (((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8
            }
        })
        .collect()
}

fn apply(lut: &[u8], image: &Image<i16>) -> Image<u8> {
    Image {
        width: image.width,
        height: image.height,
        pixel_mm: image.pixel_mm,
        data: image
            .data
            .iter()
            .map(|&v| lut[(v as i32 - i16::MIN as i32) as usize])
            .collect(),
    }
}

/// The projection along a direction turned `angle` radians about the volume's k axis (the
/// patient's long axis for an axial series), from anterior (0) towards the patient's left.
/// Every voxel is scattered into the column its position projects to, so each image row
/// (a k, superior at the top) is the maximum along the turned ray.
/// Columns no voxel projects to stay `floor` (the type's least value: black).
pub fn mip_turned<T: Copy + Ord>(volume: &Volume<T>, angle: f64, floor: T) -> Image<T> {
    let [nx, ny, nz] = volume.dims;
    let [sx, sy, sz] = volume.spacing;
    let (sin, cos) = angle.sin_cos();
    // Columns are sx wide; the image spans the volume's diagonal at every angle.
    let half_x = (nx as f64 - 1.0) / 2.0;
    let half_y = (ny as f64 - 1.0) / 2.0;
    let diagonal = ((nx as f64 * sx).powi(2) + (ny as f64 * sy).powi(2)).sqrt();
    let width = ((diagonal / sx).ceil() as usize).max(1);
    let centre = (width as f64 - 1.0) / 2.0;
    let column: Vec<usize> = (0..ny)
        .flat_map(|j| {
            (0..nx).map(move |i| {
                let u = ((i as f64 - half_x) * sx * cos + (j as f64 - half_y) * sy * sin) / sx;
                (u + centre).round().clamp(0.0, (width - 1) as f64) as usize
            })
        })
        .collect();
    let mut data = vec![floor; width * nz];
    for k in 0..nz {
        let row = nz - 1 - k;
        let out = &mut data[row * width..(row + 1) * width];
        let plane = &volume.data[k * nx * ny..(k + 1) * nx * ny];
        for (&u, &v) in column.iter().zip(plane) {
            let o = &mut out[u];
            *o = (*o).max(v);
        }
    }
    Image {
        width,
        height: nz,
        pixel_mm: [sx, sz],
        data,
    }
}

/// Encodes RGB as PNG with fast compression: pictures are made while a person scrubs.
fn encode(rgb: &Rgb) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, rgb.width as u32, rgb.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&rgb.data)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Draws `picture` of `loaded` as PNG.
pub fn draw(loaded: &Loaded, picture: &Picture) -> Result<Vec<u8>, ViewError> {
    let lut = voi_lut(picture.window);
    let (grey, labels) = match picture.view {
        View::Slice(plane, index) => {
            let ct = reformat::slice(&loaded.ct, plane, index);
            let labels = (picture.opacity > 0)
                .then(|| {
                    loaded
                        .labels
                        .as_ref()
                        .map(|l| reformat::slice(l, plane, index))
                })
                .flatten();
            (apply(&lut, &ct), labels)
        }
        View::Mip(step) => {
            let angle = (step % MIP_ANGLES) as f64 * std::f64::consts::TAU / MIP_ANGLES as f64;
            let ct = mip_turned(&loaded.ct, angle, i16::MIN);
            let labels = (picture.opacity > 0)
                .then(|| loaded.labels.as_ref().map(|l| mip_turned(l, angle, 0)))
                .flatten();
            (apply(&lut, &ct), labels)
        }
    };
    let rgb = draw::overlay(&grey, labels.as_ref(), picture.opacity as f64 / 100.0);
    let rgb = draw::to_physical_aspect(&rgb, grey.pixel_mm, MIN_SIDE, MAX_SIDE);
    Ok(encode(&rgb)?)
}

/// The version of a file: its size and modification time.
fn file_version(path: &Path) -> String {
    std::fs::metadata(path)
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}.{t}", m.len())
        })
        .unwrap_or_default()
}

/// Reads the volume in `dir` and, if `labels_dir` holds one of the same dims, its labels and
/// their legend from `stats.json`.
pub fn load(dir: &Path, labels_dir: Option<&Path>) -> Result<Loaded, ViewError> {
    let header = raw_io::read_header(&dir.join("volume.json"))?;
    let n: usize = header.dims.iter().product();
    if n.saturating_mul(2) > VOLUME_BYTES {
        return Err(ViewError::TooLarge {
            path: dir.join("volume.raw"),
            bytes: n.saturating_mul(2),
            limit: VOLUME_BYTES,
        });
    }
    let (ct, _) = raw_io::read_volume::<i16>(dir, "volume")?;
    let mut version = file_version(&dir.join("volume.raw"));
    let mut labels = None;
    let mut legend = Vec::new();
    if let Some(ld) = labels_dir {
        let (l, _) = raw_io::read_volume::<u16>(ld, "labels")?;
        if l.dims != ct.dims {
            return Err(ViewError::Geometry {
                path: ld.join("labels.json"),
                labels: l.dims,
                volume: ct.dims,
            });
        }
        version.push('-');
        version.push_str(&file_version(&ld.join("labels.raw")));
        legend = legend_of(&l, &ld.join("stats.json"));
        labels = Some(l);
    }
    let bytes = ct.data.len() * 2 + labels.as_ref().map_or(0, |l| l.data.len() * 2);
    Ok(Loaded {
        ct,
        labels,
        legend,
        version,
        bytes,
    })
}

/// The legend: each label present, its colour, and its volume from `stats.json` where that
/// file has it (`components[]` entries with `label`, `voxels`, `volume_ml`).
fn legend_of(labels: &Volume<u16>, stats: &Path) -> Vec<LegendEntry> {
    let stats: Option<serde_json::Value> = std::fs::read(stats)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let from_stats = |label: u16| {
        stats
            .as_ref()
            .and_then(|s| s["components"].as_array())
            .and_then(|c| c.iter().find(|e| e["label"].as_u64() == Some(label as u64)))
            .cloned()
    };
    let mut present: Vec<u16> = {
        let mut seen = vec![false; u16::MAX as usize + 1];
        for &v in &labels.data {
            seen[v as usize] = true;
        }
        (1..=u16::MAX).filter(|&l| seen[l as usize]).collect()
    };
    present.truncate(64);
    present
        .into_iter()
        .map(|label| {
            let [r, g, b] = draw::label_colour(label);
            let entry = from_stats(label);
            LegendEntry {
                label,
                colour: format!("#{r:02x}{g:02x}{b:02x}"),
                volume_ml: entry.as_ref().and_then(|e| e["volume_ml"].as_f64()),
                voxels: entry.as_ref().and_then(|e| e["voxels"].as_u64()),
            }
        })
        .collect()
}

/// Volumes and PNGs kept between requests, each bounded by bytes (oldest out first).
#[derive(Default)]
pub struct RenderCache {
    volumes: Mutex<Lru<Arc<Loaded>>>,
    pngs: Mutex<Lru<Arc<Vec<u8>>>>,
}

struct Lru<T> {
    map: HashMap<String, T>,
    order: VecDeque<String>,
    bytes: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Lru {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T: Clone> Lru<T> {
    fn get(&mut self, key: &str) -> Option<T> {
        let v = self.map.get(key)?.clone();
        if let Some(pos) = self.order.iter().position(|k| k == key) {
            let k = self.order.remove(pos).expect("position is in range");
            self.order.push_back(k);
        }
        Some(v)
    }

    fn put(
        &mut self,
        key: String,
        value: T,
        size: usize,
        limit: usize,
        size_of: impl Fn(&T) -> usize,
    ) {
        if self.map.contains_key(&key) {
            return;
        }
        while self.bytes + size > limit {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.map.remove(&old) {
                self.bytes -= size_of(&v);
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }
}

/// A rendered picture and its ETag.
pub struct Rendered {
    pub png: Arc<Vec<u8>>,
    pub etag: String,
}

impl RenderCache {
    /// The volume in `dir` (with labels from `labels_dir`), read once.
    pub fn volume(&self, dir: &Path, labels_dir: Option<&Path>) -> Result<Arc<Loaded>, ViewError> {
        let key = format!(
            "{}|{}|{}",
            dir.display(),
            labels_dir
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            file_version(&dir.join("volume.raw"))
        );
        if let Some(v) = self
            .volumes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v);
        }
        let loaded = Arc::new(load(dir, labels_dir)?);
        let size = loaded.bytes;
        self.volumes.lock().unwrap_or_else(|e| e.into_inner()).put(
            key,
            loaded.clone(),
            size,
            VOLUME_BYTES,
            |v| v.bytes,
        );
        Ok(loaded)
    }

    /// `picture` of the volume, from the cache or drawn now.
    pub fn picture(
        &self,
        scope: &str,
        loaded: &Loaded,
        picture: &Picture,
    ) -> Result<Rendered, ViewError> {
        let key = format!("{scope}|{}|{}", loaded.version, picture.key());
        let etag = {
            use sha2::Digest;
            format!(
                "\"{}\"",
                &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..32]
            )
        };
        if let Some(png) = self
            .pngs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Rendered { png, etag });
        }
        let png = Arc::new(draw(loaded, picture)?);
        self.pngs.lock().unwrap_or_else(|e| e.into_inner()).put(
            key,
            png.clone(),
            png.len(),
            PNG_BYTES,
            |p| p.len(),
        );
        Ok(Rendered { png, etag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voi_lut_follows_dicom_s_linear_function() {
        // Window 40/400: below 40 - 0.5 - 199.5 = -160 is black, above 239 white.
        let lut = voi_lut(Window {
            center: 40.0,
            width: 400.0,
        });
        let at = |hu: i16| lut[(hu as i32 - i16::MIN as i32) as usize];
        assert_eq!(at(-1000), 0);
        assert_eq!(at(-160), 0);
        assert_eq!(at(240), 255);
        assert!((126..=129).contains(&at(40)), "{}", at(40));
        assert!(at(0) < at(100));
    }

    #[test]
    fn the_projection_at_a_quarter_turn_sees_the_other_side() {
        // One bright voxel at i = 0 (patient right), j = middle: at angle 0 it projects to
        // the left of the image; a quarter turn puts it in the middle column.
        let dims = [9, 9, 2];
        let mut v = Volume::filled(dims, 0i16);
        v.set(0, 4, 1, 1000);
        let front = mip_turned(&v, 0.0, i16::MIN);
        let side = mip_turned(&v, std::f64::consts::FRAC_PI_2, i16::MIN);
        let col = |img: &Image<i16>| (0..img.width).find(|&x| img.get(x, 0) == 1000).unwrap();
        assert!(col(&front) < front.width / 2 - 2, "{}", col(&front));
        assert!(col(&side).abs_diff(side.width / 2) <= 1, "{}", col(&side));
        // Row 0 is the top: the highest k.
        assert!((0..front.width).all(|x| front.get(x, 1) <= 0));
    }
}
