// CLIP byte-level BPE, equal to transformers 5.x CLIPTokenizer (a `tokenizers` pipeline):
//   special tokens (<|startoftext|>, <|endoftext|>) are split out of the normalized text;
//   normalizer: NFC, every run of \s becomes one space, Lowercase;
//   pre-tokenizer: the regex
//     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//   keeping matches and dropping the rest (whitespace), then GPT-2's bytes-to-unicode mapping;
//   model: BPE over those characters with "</w>" appended to the last one of each word;
//   post-processing: BOS + tokens + EOS, truncated to max_length and padded with pad_id.
// Special tokens are matched after normalization, as with the SD 1.x tokenizer_config.json
// (added tokens "normalized": true), which also makes "<|ENDOFTEXT|>" a special token.

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sdinterp/errors.h"
#include "sdinterp/tokenizer.h"
#include "tokenizer/unicode.h"

namespace sdinterp {

namespace {

constexpr std::string_view kEndOfWord = "</w>";
// Words longer than this are tokenized but not cached: they are rare, and caching them would let
// one long prompt (or a fuzzer) grow the cache without bound.
constexpr size_t kMaxCachedWordBytes = 128;
constexpr size_t kMaxCacheEntries = 1 << 15;

// GPT-2's reversible byte -> printable character table: printable Latin-1 bytes map to
// themselves, the other 68 bytes to U+0100.. in byte order, so no BPE symbol is whitespace or a
// control character.
std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError("cannot read tokenizer " + std::string(what) + " file " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw ModelError("cannot read tokenizer " + std::string(what) + " file " + path);
  return buffer.str();
}

// Renders bytes for display: complete UTF-8 characters as they are, any other byte as \xNN, so a
// token holding part of a character stays visible and the result is always valid UTF-8.
std::string printable_bytes(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const unicode::DecodeStep step = unicode::decode_step(bytes, i);
    if (step.valid) {
      out.append(bytes.substr(i, step.length));
    } else {
      for (size_t k = i; k < i + step.length; ++k) {
        const auto b = static_cast<unsigned char>(bytes[k]);
        out += "\\x";
        out += kHex[b >> 4];
        out += kHex[b & 0xF];
      }
    }
    i += step.length;
  }
  return out;
}

}  // namespace

struct ClipTokenizer::Impl {
  TokenizerSpecialIds special;
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int32_t, std::string> id_to_token;
  // (left id, right id) -> (rank, merged id); ranks are the merges.txt line order.
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  std::unordered_map<uint64_t, Merge> merges;
  // Initial BPE symbol of each byte, inside a word and as the word's last byte ("x</w>");
  // -1 when the vocabulary lacks it (then the unknown token, <|endoftext|>, stands for it).
  std::array<int32_t, 256> byte_symbol{};
  std::array<int32_t, 256> byte_symbol_end{};
  std::array<char32_t, 256> byte_to_char{};
  std::unordered_map<char32_t, unsigned char> char_to_byte;
  // Special tokens split out of the normalized text, with their ids (BOS and EOS content).
  std::vector<std::pair<std::u32string, int32_t>> special_tokens;

  // Parses and checks the two files; the names only go into error messages.
  static std::unique_ptr<Impl> build(std::string_view vocab_json, std::string_view merges_txt,
                                     const TokenizerSpecialIds& special, const std::string& vocab_name,
                                     const std::string& merges_name);

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void bpe_uncached(std::string_view word, std::vector<int32_t>& out) const;
  void tokenize_segment(std::u32string_view text, std::vector<int32_t>& out) const;
  std::string token_bytes(int32_t id, bool* end_of_word) const;
};

void ClipTokenizer::Impl::bpe_uncached(std::string_view word, std::vector<int32_t>& out) const {
  const auto unk = static_cast<int32_t>(special.eos_id);
  // Positions are 64-bit so that no input length, however absurd, can overflow them.
  const auto n = static_cast<int64_t>(word.size());
  struct Symbol {
    int32_t id;
    bool alive;
    int64_t prev;
    int64_t next;
  };
  std::vector<Symbol> symbols(word.size());
  for (int64_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(word[static_cast<size_t>(i)]);
    const bool last = i + 1 == n;
    symbols[static_cast<size_t>(i)] = {last ? byte_symbol_end[b] : byte_symbol[b], true, i - 1, last ? -1 : i + 1};
  }
  auto at = [&symbols](int64_t pos) -> Symbol& { return symbols[static_cast<size_t>(pos)]; };

  // Candidate merges, lowest rank first and leftmost among equal ranks (the order of the
  // `tokenizers` BPE model). Entries go stale when a neighbour changes; the ids stored with each
  // one detect that when it is popped, which is cheaper than removing it from the heap.
  struct Candidate {
    int32_t rank;
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
    int64_t pos;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int64_t pos) {
    if (pos < 0) return;
    const Symbol& left = at(pos);
    if (left.next < 0 || left.id < 0) return;
    const int32_t right_id = at(left.next).id;
    if (right_id < 0) return;
    const auto it = merges.find(pair_key(left.id, right_id));
    if (it == merges.end()) return;
    queue.push({it->second.rank, left.id, right_id, it->second.merged_id, pos});
  };
  for (int64_t i = 0; i + 1 < n; ++i) push(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = at(c.pos);
    if (!left.alive || left.next < 0 || left.id != c.left_id) continue;
    Symbol& right = at(left.next);
    if (right.id != c.right_id) continue;
    // The left symbol absorbs the right one, so positions of live symbols never move.
    left.id = c.merged_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) at(left.next).prev = c.pos;
    push(left.prev);
    push(c.pos);
  }
  for (int64_t i = 0; i >= 0 && i < n; i = at(i).next) {
    const int32_t id = at(i).id;
    out.push_back(id < 0 ? unk : id);
  }
}

void ClipTokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    const auto it = cache.find(std::string(word));
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  bpe_uncached(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()));
  }
}

// Pre-tokenizes one normalized segment (no special tokens in it) with CLIP's regex, written out
// as a scanner: at each position the alternatives are tried in the regex's order, and characters
// that start no match (whitespace) are skipped, as the Split pre-tokenizer removes them.
void ClipTokenizer::Impl::tokenize_segment(std::u32string_view text, std::vector<int32_t>& out) const {
  static constexpr std::array<std::u32string_view, 7> kContractions = {U"'s", U"'t",  U"'re", U"'ve",
                                                                       U"'m", U"'ll", U"'d"};
  std::string word;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const char32_t c = text[i];
    size_t end = i;
    if (c == U'\'') {
      for (std::u32string_view contraction : kContractions) {
        if (text.substr(i, contraction.size()) == contraction) {
          end = i + contraction.size();
          break;
        }
      }
    }
    if (end == i) {
      if (unicode::is_whitespace(c)) {
        ++i;
        continue;
      }
      if (unicode::is_letter(c)) {
        end = i + 1;
        while (end < n && unicode::is_letter(text[end])) ++end;
      } else if (unicode::is_number(c)) {
        end = i + 1;
      } else {
        end = i + 1;
        while (end < n && !unicode::is_whitespace(text[end]) && !unicode::is_letter(text[end]) &&
               !unicode::is_number(text[end])) {
          ++end;
        }
      }
    }
    word.clear();
    for (size_t k = i; k < end; ++k) unicode::append_utf8(word, text[k]);
    bpe(word, out);
    i = end;
  }
}

// The bytes a token stands for; end_of_word tells whether it ended in "</w>". Special tokens (and
// anything outside the byte alphabet) come back as their UTF-8 text.
std::string ClipTokenizer::Impl::token_bytes(int32_t id, bool* end_of_word) const {
  *end_of_word = false;
  const auto it = id_to_token.find(id);
  if (it == id_to_token.end()) return {};
  std::string_view token = it->second;
  if (id == special.bos_id || id == special.eos_id) return std::string(token);
  if (token.size() >= kEndOfWord.size() && token.substr(token.size() - kEndOfWord.size()) == kEndOfWord) {
    token.remove_suffix(kEndOfWord.size());
    *end_of_word = true;
  }
  std::string bytes;
  for (char32_t cp : unicode::decode_utf8_lossy(token)) {
    const auto b = char_to_byte.find(cp);
    if (b != char_to_byte.end()) {
      bytes.push_back(static_cast<char>(b->second));
    } else {
      unicode::append_utf8(bytes, cp);
    }
  }
  return bytes;
}

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_path, const std::string& merges_path,
                                        TokenizerSpecialIds special) {
  const std::string vocab = read_file(vocab_path, "vocab");
  const std::string merges = read_file(merges_path, "merges");
  return ClipTokenizer(Impl::build(vocab, merges, special, vocab_path, merges_path));
}

ClipTokenizer ClipTokenizer::from_strings(std::string_view vocab_json, std::string_view merges_txt,
                                          TokenizerSpecialIds special) {
  return ClipTokenizer(Impl::build(vocab_json, merges_txt, special, "vocab.json", "merges.txt"));
}

const TokenizerSpecialIds& ClipTokenizer::special_ids() const { return impl_->special; }

Tokenization ClipTokenizer::encode(std::string_view text) const {
  const Impl& impl = *impl_;

  // Normalize: lossy decode, NFC, fold whitespace runs to one space, lower-case.
  const std::u32string composed = unicode::nfc(unicode::decode_utf8_lossy(text));
  std::u32string normalized;
  normalized.reserve(composed.size());
  for (size_t i = 0; i < composed.size(); ++i) {
    if (unicode::is_whitespace(composed[i])) {
      normalized.push_back(U' ');
      while (i + 1 < composed.size() && unicode::is_whitespace(composed[i + 1])) ++i;
    } else {
      unicode::append_lowercase(normalized, composed[i]);
    }
  }

  // Split out special tokens (leftmost, longest first), tokenize the text between them.
  std::vector<int32_t> body;
  const std::u32string_view view(normalized);
  size_t segment_start = 0;
  for (size_t i = 0; i < view.size();) {
    const std::pair<std::u32string, int32_t>* found = nullptr;
    for (const auto& candidate : impl.special_tokens) {
      if (view[i] == candidate.first.front() && view.substr(i, candidate.first.size()) == candidate.first &&
          (found == nullptr || candidate.first.size() > found->first.size())) {
        found = &candidate;
      }
    }
    if (found == nullptr) {
      ++i;
      continue;
    }
    impl.tokenize_segment(view.substr(segment_start, i - segment_start), body);
    body.push_back(found->second);
    i += found->first.size();
    segment_start = i;
  }
  impl.tokenize_segment(view.substr(segment_start), body);

  // BOS + at most max_length - 2 tokens + EOS, then padding.
  const auto max_length = static_cast<size_t>(impl.special.max_length);
  const size_t kept = std::min(body.size(), max_length - 2);
  Tokenization result;
  result.ids.reserve(max_length);
  result.ids.push_back(impl.special.bos_id);
  result.ids.insert(result.ids.end(), body.begin(), body.begin() + static_cast<std::ptrdiff_t>(kept));
  result.ids.push_back(impl.special.eos_id);
  result.ids.resize(max_length, impl.special.pad_id);
  result.truncated =
      static_cast<int>(std::min<size_t>(body.size() - kept, static_cast<size_t>(std::numeric_limits<int>::max())));

  const size_t shown = kept + 2;
  result.tokens.reserve(shown);
  for (size_t i = 0; i < shown; ++i) {
    bool end_of_word = false;
    std::string text_of_token = printable_bytes(impl.token_bytes(static_cast<int32_t>(result.ids[i]), &end_of_word));
    if (end_of_word) text_of_token += kEndOfWord;
    result.tokens.push_back(std::move(text_of_token));
  }

  // The cut tokens decoded as transformers decodes: bytes joined, "</w>" read as a space, invalid
  // UTF-8 (a character split by the cut) replaced, surrounding spaces trimmed.
  std::string dropped;
  for (size_t i = kept; i < body.size(); ++i) {
    bool end_of_word = false;
    dropped += impl.token_bytes(body[i], &end_of_word);
    if (end_of_word) dropped += ' ';
  }
  dropped = unicode::encode_utf8(unicode::decode_utf8_lossy(dropped));
  const size_t first = dropped.find_first_not_of(' ');
  result.dropped_text =
      first == std::string::npos ? std::string() : dropped.substr(first, dropped.find_last_not_of(' ') - first + 1);
  return result;
}

std::unique_ptr<ClipTokenizer::Impl> ClipTokenizer::Impl::build(std::string_view vocab_json,
                                                                std::string_view merges_txt,
                                                                const TokenizerSpecialIds& special,
                                                                const std::string& vocab_name,
                                                                const std::string& merges_name) {
  auto impl = std::make_unique<ClipTokenizer::Impl>();
  impl->special = special;
  if (special.max_length < 2) {
    throw ModelError("tokenizer max_length must be at least 2 (BOS and EOS), got " +
                     std::to_string(special.max_length));
  }

  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(vocab_json);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("tokenizer vocab file " + vocab_name + " is not valid JSON: " + e.what());
  }
  if (!parsed.is_object() || parsed.empty()) {
    throw ModelError("tokenizer vocab file " + vocab_name + " must be a non-empty JSON object of token -> id");
  }
  for (const auto& [token, value] : parsed.items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
        value.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      throw ModelError("tokenizer vocab file " + vocab_name + ": id of token " + nlohmann::json(token).dump() +
                       " is not a non-negative 32-bit integer");
    }
    const auto id = static_cast<int32_t>(value.get<int64_t>());
    impl->vocab.emplace(token, id);
    impl->id_to_token.emplace(id, token);
  }
  for (const auto& [name, id] :
       {std::pair<const char*, int64_t>{"bos", special.bos_id}, {"eos", special.eos_id}, {"pad", special.pad_id}}) {
    if (id < 0 || id > std::numeric_limits<int32_t>::max() || impl->id_to_token.count(static_cast<int32_t>(id)) == 0) {
      throw ModelError("tokenizer vocab file " + vocab_name + " has no token with the " + name + " id " +
                       std::to_string(id));
    }
  }

  // Byte alphabet.
  impl->byte_to_char = bytes_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    unicode::append_utf8(symbol, impl->byte_to_char[static_cast<size_t>(b)]);
    impl->char_to_byte.emplace(impl->byte_to_char[static_cast<size_t>(b)], static_cast<unsigned char>(b));
    const auto plain = impl->vocab.find(symbol);
    const auto end = impl->vocab.find(symbol + std::string(kEndOfWord));
    impl->byte_symbol[static_cast<size_t>(b)] = plain == impl->vocab.end() ? -1 : plain->second;
    impl->byte_symbol_end[static_cast<size_t>(b)] = end == impl->vocab.end() ? -1 : end->second;
  }

  // Merges: one "left right" pair per line, rank = order; "#version" lines are comments.
  size_t line_no = 0;
  int32_t rank = 0;
  size_t pos = 0;
  while (pos < merges_txt.size()) {
    size_t eol = merges_txt.find('\n', pos);
    if (eol == std::string_view::npos) eol = merges_txt.size();
    std::string_view line = merges_txt.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.substr(0, 8) == "#version") continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      throw ModelError("tokenizer merges file " + merges_name + " line " + std::to_string(line_no) +
                       " is not two tokens separated by one space");
    }
    const std::string left(line.substr(0, space));
    const std::string right(line.substr(space + 1));
    const auto l = impl->vocab.find(left);
    const auto r = impl->vocab.find(right);
    const auto m = impl->vocab.find(left + right);
    if (l == impl->vocab.end() || r == impl->vocab.end() || m == impl->vocab.end()) {
      throw ModelError("tokenizer merges file " + merges_name + " line " + std::to_string(line_no) +
                       " uses a token missing from " + vocab_name);
    }
    // A repeated pair takes its last rank, as both transformers implementations build the map.
    impl->merges.insert_or_assign(pair_key(l->second, r->second), ClipTokenizer::Impl::Merge{rank, m->second});
    ++rank;
  }

  for (int64_t id : {special.bos_id, special.eos_id}) {
    const std::string& content = impl->id_to_token.at(static_cast<int32_t>(id));
    if (content.empty()) continue;  // nothing to match in text
    impl->special_tokens.emplace_back(unicode::decode_utf8_lossy(content), static_cast<int32_t>(id));
  }
  return impl;
}

}  // namespace sdinterp
