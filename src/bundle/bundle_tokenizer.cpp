#include "sdinterp/bundle_tokenizer.h"

#include <filesystem>

namespace sdinterp {

ClipTokenizer load_bundle_tokenizer(const std::string& dir, const Manifest& m) {
  TokenizerSpecialIds ids;
  ids.bos_id = m.tokenizer.bos_id;
  ids.eos_id = m.tokenizer.eos_id;
  ids.pad_id = m.tokenizer.pad_id;
  ids.max_length = m.tokenizer.max_length;
  const std::filesystem::path root(dir);
  return ClipTokenizer::from_files((root / m.tokenizer.vocab).string(), (root / m.tokenizer.merges).string(), ids);
}

}  // namespace sdinterp
