//! Building a volume from a stream's slices.

use super::error::CtSliceError;
use super::message::Slice;
use super::order::SliceOrder;
use crate::raw_io::VolumeHeader;
use crate::volume::Volume;

/// Collects the slices of one stream, checked as they come, into the volume its header
/// describes.
#[derive(Debug)]
pub struct VolumeAssembler {
    header: VolumeHeader,
    order: SliceOrder,
    data: Vec<i16>,
}

impl VolumeAssembler {
    /// Reserves the whole volume up front, so a header asking for more memory than there is
    /// gets an error naming its dims rather than ending the stage mid-stream.
    pub fn new(header: VolumeHeader) -> Result<Self, CtSliceError> {
        let voxels = header
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let too_large = || CtSliceError::VolumeTooLarge {
            dims: header.dims,
            bytes: voxels.map_or(u64::MAX, |v| v.saturating_mul(2)),
        };
        let len = voxels
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(too_large)?;
        let mut data = Vec::new();
        data.try_reserve_exact(len).map_err(|_| too_large())?;
        Ok(VolumeAssembler {
            order: SliceOrder::new(&header),
            header,
            data,
        })
    }

    /// Adds the next slice.
    pub fn add(&mut self, slice: &Slice) -> Result<(), CtSliceError> {
        self.order.check(slice)?;
        self.data.extend_from_slice(&slice.samples);
        Ok(())
    }

    /// Slices added so far.
    pub fn received(&self) -> usize {
        self.order.received()
    }

    /// The volume and its header (whose extra keys a writer repeats), once every slice came.
    pub fn finish(self) -> Result<(Volume<i16>, VolumeHeader), CtSliceError> {
        self.order.finish()?;
        let h = &self.header;
        let volume = Volume {
            dims: h.dims,
            spacing: h.spacing,
            origin: h.origin,
            orientation: h.orientation,
            data: self.data,
        };
        Ok((volume, self.header))
    }
}
