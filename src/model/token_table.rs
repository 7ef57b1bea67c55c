//! The text tower's token embedding table, read from the mapped checkpoint row by row.
//!
//! The table is most of a CLIP text tower (ViT-B/32: 49,408 x 512 floats, 101 MB of its
//! 250 MB), yet a query reads a dozen of its rows. Copied out as f32 like the other weights, it
//! is a tenth of a second of a new query's start and 100 MB of its resident set; kept in the
//! checkpoint's mapping (read-only, private, as candle maps it) only the pages of the rows a
//! text uses are ever read. The values are the same: each row is converted to f32 as the
//! loaded tensor would have been (f16 and bf16 widen exactly).
//!
//! The mapping lives as long as the model, so a checkpoint overwritten in place under a running
//! process changes what it reads (the rule every mmap-based loader has; clipsearch's downloads
//! write a new file and rename it, which leaves a mapping of the old one intact).

use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Module, Tensor};

/// Token id -> embedding row.
pub enum TokenTable {
    /// Loaded as a tensor (training, GPU devices, checkpoints in other layouts).
    Loaded(candle_nn::Embedding),
    /// Rows read from the mapped checkpoint on use.
    Mapped(MappedRows),
}

pub struct MappedRows {
    checkpoint: Arc<MmapedSafetensors>,
    key: String,
    dtype: DType,
    vocab: usize,
    hidden: usize,
    device: Device,
}

impl MappedRows {
    /// The table `key` of `checkpoint`, which must be `[vocab, hidden]` in f32, f16 or bf16.
    pub fn new(
        checkpoint: Arc<MmapedSafetensors>,
        key: &str,
        vocab: usize,
        hidden: usize,
        device: Device,
    ) -> candle_core::Result<Self> {
        let view = checkpoint.get(key)?;
        let dtype = DType::try_from(view.dtype())?;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            candle_core::bail!("{key}: token embeddings stored as {dtype:?}");
        }
        if view.shape() != [vocab, hidden] {
            candle_core::bail!(
                "{key}: shape {:?}, the configuration says [{vocab}, {hidden}]",
                view.shape()
            );
        }
        Ok(MappedRows {
            key: key.to_string(),
            checkpoint,
            dtype,
            vocab,
            hidden,
            device,
        })
    }

    /// The rows of `ids` as `[ids, hidden]` f32, converted by candle as the loaded table is.
    fn rows(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let data = self.checkpoint.get(&self.key)?.data();
        let width = self.hidden * self.dtype.size_in_bytes();
        let mut bytes = Vec::with_capacity(ids.len() * width);
        for &id in ids {
            let id = id as usize;
            if id >= self.vocab {
                candle_core::bail!("token id {id} outside the vocabulary of {}", self.vocab);
            }
            bytes.extend_from_slice(&data[id * width..(id + 1) * width]);
        }
        Tensor::from_raw_buffer(&bytes, self.dtype, &[ids.len(), self.hidden], &self.device)?
            .to_dtype(DType::F32)
    }
}

impl TokenTable {
    /// The embeddings of `ids` (`[batch, tokens]` of u32), `[batch, tokens, hidden]` in f32.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            TokenTable::Loaded(e) => e.forward(ids),
            TokenTable::Mapped(m) => {
                let (b, n) = ids.dims2()?;
                let flat = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
                m.rows(&flat)?.reshape((b, n, m.hidden))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mapped rows equal the loaded table's, for each stored dtype, and an id outside the
    /// vocabulary is an error rather than another row.
    #[test]
    fn mapped_rows_equal_the_loaded_table() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::Cpu;
        let values: Vec<f32> = (0..7 * 5).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let ids = Tensor::new(&[[6u32, 0, 3], [3, 3, 1]], &device).unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let table = Tensor::from_vec(values.clone(), (7, 5), &device)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let path = dir.path().join(format!("{dtype:?}.safetensors"));
            candle_core::safetensors::save(
                &std::collections::HashMap::from([("t".to_string(), table.clone())]),
                &path,
            )
            .unwrap();
            // SAFETY: a file this test wrote and nothing modifies.
            let st = Arc::new(unsafe { MmapedSafetensors::new(&path) }.unwrap());
            let mapped =
                TokenTable::Mapped(MappedRows::new(st.clone(), "t", 7, 5, device.clone()).unwrap());
            let loaded = TokenTable::Loaded(candle_nn::Embedding::new(
                table.to_dtype(DType::F32).unwrap(),
                5,
            ));
            let a = mapped.forward(&ids).unwrap();
            let b = loaded.forward(&ids).unwrap();
            assert_eq!(a.dims(), &[2, 3, 5]);
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(a.iter().all(|x| x.is_finite()));
            assert_eq!(a, b, "{dtype:?}");
            let outside = Tensor::new(&[[7u32]], &device).unwrap();
            assert!(mapped.forward(&outside).is_err());
            assert!(MappedRows::new(st, "t", 5, 7, device.clone()).is_err());
        }
    }
}
