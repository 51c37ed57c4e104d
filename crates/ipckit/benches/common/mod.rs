//! What the benches share.

/// Replaces `out`'s contents with the bytes of an rtrb read chunk and gives their room back to
/// the writer: how the benches receive from rtrb, as the channel's `recv_into` receives.
#[inline]
pub fn take_chunk(chunk: rtrb::chunks::ReadChunk<'_, u8>, out: &mut Vec<u8>) {
    let (first, second) = chunk.as_slices();
    out.clear();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    chunk.commit_all();
    std::hint::black_box(out);
}
