// libFuzzer target: ClipTokenizer::encode over arbitrary bytes. Beyond "no crash, no sanitizer
// report" it checks the documented shape of every result and the invalid-UTF-8 policy: the
// bytes tokenize exactly as their U+FFFD-repaired text does.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sdinterp/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

const sdinterp::ClipTokenizer& tokenizer() {
  static const sdinterp::ClipTokenizer tok = [] {
    const std::string dir = std::string(SDINTERP_MODELS_DIR) + "/tiny-sd/tokenizer";
    return sdinterp::ClipTokenizer::from_files(dir + "/vocab.json", dir + "/merges.txt");
  }();
  return tok;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer invariant violated: %s\n", what);
    std::abort();
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto step = sdinterp::unicode::decode_step(s, i);
    if (!step.valid) return false;
    i += step.length;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& tok = tokenizer();
  const auto& special = tok.special_ids();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const sdinterp::Tokenization t = tok.encode(text);

  const auto max_length = static_cast<size_t>(special.max_length);
  check(t.ids.size() == max_length, "ids.size() == max_length");
  check(t.ids.front() == special.bos_id, "starts with BOS");
  check(t.tokens.size() >= 2 && t.tokens.size() <= max_length, "tokens covers BOS..EOS");
  check(t.ids[t.tokens.size() - 1] == special.eos_id, "EOS after the kept tokens");
  for (size_t i = t.tokens.size(); i < max_length; ++i) check(t.ids[i] == special.pad_id, "padding");
  for (int64_t id : t.ids) check(id >= 0 && id < 49408, "id inside the vocabulary");
  for (const std::string& token : t.tokens) {
    check(!token.empty() && is_valid_utf8(token), "tokens are non-empty valid UTF-8");
  }
  check(t.truncated >= 0, "truncated >= 0");
  check(t.truncated == 0 || t.tokens.size() == max_length, "truncation only when full");
  check((t.truncated == 0) == t.dropped_text.empty(), "dropped_text iff truncated");
  check(is_valid_utf8(t.dropped_text), "dropped_text is valid UTF-8");

  // Invalid UTF-8 is replaced by U+FFFD before anything else sees the text.
  const std::string repaired = sdinterp::unicode::encode_utf8(sdinterp::unicode::decode_utf8_lossy(text));
  const sdinterp::Tokenization r = tok.encode(repaired);
  check(r.ids == t.ids && r.truncated == t.truncated && r.tokens == t.tokens, "bytes tokenize as their repaired text");
  return 0;
}
