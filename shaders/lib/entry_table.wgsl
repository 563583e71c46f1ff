// Tables of entries of WORDS u32 words each, sorted by their first word (where each entry starts
// in the dispatch's index space), in a storage array the including shader names `table`.
// The first word of the entry covering `idx`: the last one starting at or before it.
fn entryAt(idx: u32, entries: u32, words: u32) -> u32 {
  var lo = 0u;
  var hi = entries - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (table[mid * words] <= idx) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo * words;
}
