//! Activations regrouped for the token tiles: the tokens of a matmul go in tiles of
//! [`TILE`] (the last one shorter), and inside a tile the blocks of its tokens are
//! interleaved, block by block. A kernel then walks one weight row and one tile of
//! activations front to back, with no per-token offsets.
//!
//! Tile `k` (tokens `TILE k ..`, `n` of them) starts at value `TILE k * cols` and at
//! block `TILE k * nb`; inside it block `b` of its token `j` is at position `b * n + j`.

use super::TILE;
use crate::cpu::quantize_act::{Q8Blocks, Q8KBlocks};

/// Reorders per-token runs of `per_block` items (`blocks` runs per token) into the tile
/// layout described in the module docs.
fn interleave<T: Copy + Default>(
    src: &[T],
    n_tokens: usize,
    blocks: usize,
    per_block: usize,
) -> Vec<T> {
    let per_token = blocks * per_block;
    let mut out = vec![T::default(); src.len()];
    for t0 in (0..n_tokens).step_by(TILE) {
        let n = TILE.min(n_tokens - t0);
        let base = t0 * per_token;
        for j in 0..n {
            let token = &src[(t0 + j) * per_token..(t0 + j + 1) * per_token];
            for (b, run) in token.chunks_exact(per_block).enumerate() {
                let at = base + (b * n + j) * per_block;
                out[at..at + per_block].copy_from_slice(run);
            }
        }
    }
    out
}

/// Q8_0 / Q8_1 activations of `n_tokens` tokens in the tile layout.
pub(crate) fn tile_q8(act: &Q8Blocks, n_tokens: usize, cols: usize) -> Q8Blocks {
    let nb = cols / 32;
    Q8Blocks {
        qs: interleave(&act.qs, n_tokens, nb, 32),
        d: interleave(&act.d, n_tokens, nb, 1),
        s: if act.s.is_empty() {
            Vec::new()
        } else {
            interleave(&act.s, n_tokens, nb, 1)
        },
    }
}

/// Q8_K activations of `n_tokens` tokens in the tile layout.
pub(crate) fn tile_q8k(act: &Q8KBlocks, n_tokens: usize, cols: usize) -> Q8KBlocks {
    let nb = cols / 256;
    Q8KBlocks {
        qs: interleave(&act.qs, n_tokens, nb, 256),
        d: interleave(&act.d, n_tokens, nb, 1),
        bsums: interleave(&act.bsums, n_tokens, nb, 16),
    }
}
