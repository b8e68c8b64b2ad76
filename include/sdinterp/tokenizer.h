// CLIP byte-level BPE tokenizer (as transformers' CLIPTokenizer). No torch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sdinterp {

struct TokenizerSpecialIds {
  int64_t bos_id = 49406;
  int64_t eos_id = 49407;
  int64_t pad_id = 49407;
  int max_length = 77;
};

struct Tokenization {
  std::vector<int64_t> ids;         // exactly max_length ids: BOS, tokens, EOS, padding
  std::vector<std::string> tokens;  // readable text of each id from BOS to EOS (no padding)
  int truncated = 0;                // how many BPE tokens truncation cut
  std::string dropped_text;         // the readable text of the cut tokens ("" when none)
};

class ClipTokenizer {
 public:
  // Reads vocab.json and merges.txt (transformers' layout). Throws ModelError naming the file.
  static ClipTokenizer from_files(const std::string& vocab_path, const std::string& merges_path,
                                  TokenizerSpecialIds special = {});
  // From in-memory contents (tests, fuzzers).
  static ClipTokenizer from_strings(std::string_view vocab_json, std::string_view merges_txt,
                                    TokenizerSpecialIds special = {});

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // Never throws on arbitrary bytes: invalid UTF-8 sequences are replaced by U+FFFD.
  Tokenization encode(std::string_view text) const;
  const TokenizerSpecialIds& special_ids() const;

 private:
  struct Impl;
  explicit ClipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdinterp
