// CLIP tokenizer: golden ids from transformers, the invalid-UTF-8 policy, the readable fields
// and loader errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "sdinterp/errors.h"
#include "sdinterp/tokenizer.h"
#include "tokenizer/unicode.h"

namespace sdinterp {
namespace {

const std::string kTokenizerDir = std::string(SDINTERP_MODELS_DIR) + "/tiny-sd/tokenizer";
constexpr int64_t kBos = 49406;
constexpr int64_t kEos = 49407;

const ClipTokenizer& tokenizer() {
  static const ClipTokenizer tok =
      ClipTokenizer::from_files(kTokenizerDir + "/vocab.json", kTokenizerDir + "/merges.txt");
  return tok;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The ids between BOS and the final EOS (exclusive), so expectations can be written compactly.
// tokens covers BOS..EOS, which tells where the EOS is even when the text holds <|endoftext|>.
std::vector<int64_t> body_ids(const Tokenization& t) {
  EXPECT_GE(t.tokens.size(), 2u);
  EXPECT_EQ(t.ids.at(t.tokens.size() - 1), kEos);
  return std::vector<int64_t>(t.ids.begin() + 1, t.ids.begin() + static_cast<std::ptrdiff_t>(t.tokens.size()) - 1);
}

TEST(ClipTokenizerGolden, AllCasesMatchTransformers) {
  std::ifstream in(std::string(SDINTERP_GOLDEN_DIR) + "/clip_tokenizer_cases.json");
  ASSERT_TRUE(in) << "missing golden file";
  const nlohmann::json golden = nlohmann::json::parse(in);
  const auto& cases = golden.at("cases");
  ASSERT_EQ(cases.size(), 20u);  // a shrunken golden file must not pass silently
  int matched = 0;
  for (const auto& c : cases) {
    const std::string prompt = c.at("prompt").get<std::string>();
    SCOPED_TRACE("prompt: " + prompt);
    const auto expected = c.at("input_ids").get<std::vector<int64_t>>();
    const int untruncated = c.at("untruncated_len").get<int>();
    const Tokenization t = tokenizer().encode(prompt);
    ASSERT_EQ(expected.size(), 77u);
    EXPECT_EQ(t.ids, expected);
    EXPECT_EQ(t.truncated, std::max(0, untruncated - 77));
    // tokens covers BOS..EOS of the kept ids.
    EXPECT_EQ(t.tokens.size(), static_cast<size_t>(std::min(untruncated, 77)));
    if (t.ids == expected && t.truncated == std::max(0, untruncated - 77)) ++matched;
  }
  EXPECT_EQ(matched, 20);
}

TEST(ClipTokenizer, KnownIdsAndTokens) {
  const Tokenization t = tokenizer().encode("a photo of a cat");
  EXPECT_EQ(body_ids(t), (std::vector<int64_t>{320, 1125, 539, 320, 2368}));
  EXPECT_EQ(t.tokens, (std::vector<std::string>{"<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>",
                                                "<|endoftext|>"}));
  EXPECT_EQ(t.truncated, 0);
  EXPECT_EQ(t.dropped_text, "");
  ASSERT_EQ(t.ids.size(), 77u);
  EXPECT_TRUE(std::all_of(t.ids.begin() + 7, t.ids.end(), [](int64_t id) { return id == kEos; }));
}

TEST(ClipTokenizer, TokensShowBytesOfPartialCharacters) {
  // "brûlée": û (C3 BB) is split over two BPE tokens, each shown by its byte.
  const Tokenization t = tokenizer().encode("brûlée");
  EXPECT_EQ(t.tokens,
            (std::vector<std::string>{"<|startoftext|>", "br", "\\xC3", "\\xBB", "l", "ée</w>", "<|endoftext|>"}));
  const Tokenization cafe = tokenizer().encode("café");
  EXPECT_EQ(cafe.tokens.at(1), "café</w>");
}

TEST(ClipTokenizer, EmptyPrompt) {
  const Tokenization t = tokenizer().encode("");
  EXPECT_EQ(t.ids.at(0), kBos);
  EXPECT_EQ(t.ids.at(1), kEos);
  EXPECT_EQ(t.tokens, (std::vector<std::string>{"<|startoftext|>", "<|endoftext|>"}));
  EXPECT_EQ(t.truncated, 0);
  const Tokenization blank = tokenizer().encode(" \t\n\r\u00a0\u3000 ");
  EXPECT_EQ(blank.ids, t.ids);
}

TEST(ClipTokenizer, DroppedTextOfLongPrompt) {
  std::string prompt;
  for (int i = 0; i < 100; ++i) prompt += "word ";
  const Tokenization t = tokenizer().encode(prompt);
  EXPECT_EQ(t.truncated, 25);
  std::string expected = "word";
  for (int i = 1; i < 25; ++i) expected += " word";
  EXPECT_EQ(t.dropped_text, expected);
  EXPECT_EQ(t.ids.at(76), kEos);
  EXPECT_EQ(t.tokens.size(), 77u);
  EXPECT_EQ(t.tokens.back(), "<|endoftext|>");

  // A cut inside a word: 76 tokens of "a" then "photorealistic" (photo + realistic</w>).
  std::string cut;
  for (int i = 0; i < 74; ++i) cut += "a ";
  cut += "photorealistic cat";
  const Tokenization c = tokenizer().encode(cut);
  EXPECT_EQ(c.truncated, 2);
  EXPECT_EQ(c.tokens.at(75), "photo");
  EXPECT_EQ(c.dropped_text, "realistic cat");
}

// Ids for inputs beyond the golden file, computed with `tokenizers` 0.23.3 configured as
// transformers 5.x CLIPTokenizer builds it (special tokens "normalized": true, as SD 1.x's
// tokenizer_config.json), on these vocab/merges files.
TEST(ClipTokenizer, EdgeCasesMatchTokenizersLibrary) {
  struct Case {
    const char* text;
    std::vector<int64_t> body;
  };
  const std::vector<Case> cases = {
      {"<|endoftext|>", {49407}},
      {"A<|startoftext|>b!<|endoftext|>", {320, 49406, 321, 256, 49407}},
      {"<|ENDOFTEXT|>", {49407}},
      {"\u0130stanbul", {328, 16384, 11231}},  // İ lower-cases to i + U+0307
      {"a\u00a0b\u3000c\u2028d\u0085e", {320, 321, 322, 323, 324}},
      {"\ufffd", {39802}},
      {"x\ufffd\ufffdy", {343, 47356, 39802, 344}},
      {"hello!!!'s ''s", {3306, 11194, 262, 338, 8445, 338}},
      {"e\u0301te", {3459, 756}},                              // NFC composes é
      {"\u03a3\u0391\u03a3", {139, 225, 138, 109, 139, 481}},  // no final-sigma rule
      {"\u01c5", {131, 484}},
      {"\u216b \u00bd \u0663", {158, 227, 375, 33613, 149, 352}},
      {"a\u200bb\u180ec", {320, 9844, 321, 157, 254, 492, 322}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(body_ids(tokenizer().encode(c.text)), c.body);
  }
  // Control characters (an embedded NUL included) are kept, not stripped.
  const Tokenization controls = tokenizer().encode(std::string("\x00\x01\x7f", 3));
  EXPECT_EQ(body_ids(controls), (std::vector<int64_t>{188, 189, 477}));
}

TEST(ClipTokenizer, PadIdComesFromSpecialIds) {
  TokenizerSpecialIds sd2;
  sd2.pad_id = 0;
  const ClipTokenizer tok =
      ClipTokenizer::from_files(kTokenizerDir + "/vocab.json", kTokenizerDir + "/merges.txt", sd2);
  const Tokenization t = tok.encode("a photo of a cat");
  EXPECT_EQ(body_ids(t), (std::vector<int64_t>{320, 1125, 539, 320, 2368}));
  EXPECT_EQ(t.ids.at(6), kEos);
  EXPECT_TRUE(std::all_of(t.ids.begin() + 7, t.ids.end(), [](int64_t id) { return id == 0; }));
  EXPECT_EQ(tok.special_ids().pad_id, 0);
}

TEST(ClipTokenizer, CacheDoesNotChangeResults) {
  const Tokenization first = tokenizer().encode("photorealistic otherworldly photorealistic");
  const Tokenization second = tokenizer().encode("photorealistic otherworldly photorealistic");
  EXPECT_EQ(first.ids, second.ids);
  EXPECT_EQ(body_ids(first), (std::vector<int64_t>{1153, 16157, 9758, 36268, 1153, 16157}));
}

TEST(ClipTokenizer, VeryLongWordIsFast) {
  // BPE is O(n log n) per word; a quadratic implementation would take minutes here.
  const Tokenization t = tokenizer().encode(std::string(1 << 18, 'a'));
  EXPECT_EQ(t.ids.size(), 77u);
  EXPECT_EQ(t.ids.at(1), 23126);  // "aaaaaaaa"
  // 32769 BPE tokens (the word ends in "aaaa" "aaaa</w>"), as `tokenizers` gives.
  EXPECT_EQ(t.truncated, 32769 - 75);
}

// ---- invalid UTF-8 -------------------------------------------------------------------------

TEST(Utf8Decoding, MaximalSubpartsBecomeOneReplacementEach) {
  using unicode::decode_utf8_lossy;
  constexpr char32_t R = unicode::kReplacementChar;
  EXPECT_EQ(decode_utf8_lossy("a\x80z"), (std::u32string{U'a', R, U'z'}));  // lone continuation
  EXPECT_EQ(decode_utf8_lossy("\x80\xBF"), (std::u32string{R, R}));
  EXPECT_EQ(decode_utf8_lossy("\xE2\x82z"), (std::u32string{R, U'z'}));  // truncated 3-byte
  EXPECT_EQ(decode_utf8_lossy("\xF0\x9F\x90"), (std::u32string{R}));     // truncated at end
  EXPECT_EQ(decode_utf8_lossy("\xC0\xAF"), (std::u32string{R, R}));      // overlong '/'
  EXPECT_EQ(decode_utf8_lossy("\xE0\x80\xAF"), (std::u32string{R, R, R}));
  EXPECT_EQ(decode_utf8_lossy("\xF0\x80\x80\xAF"), (std::u32string{R, R, R, R}));
  EXPECT_EQ(decode_utf8_lossy("\xED\xA0\x80"), (std::u32string{R, R, R}));         // surrogate D800
  EXPECT_EQ(decode_utf8_lossy("\xF4\x90\x80\x80"), (std::u32string{R, R, R, R}));  // > U+10FFFF
  EXPECT_EQ(decode_utf8_lossy("\xFF\xFE"), (std::u32string{R, R}));
  EXPECT_EQ(decode_utf8_lossy("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x90\xB1"),
            (std::u32string{0xE9, 0x20AC, 0x1F431}));  // valid text is untouched
  EXPECT_EQ(decode_utf8_lossy(std::string("\x00", 1)), (std::u32string{0}));
}

TEST(ClipTokenizer, InvalidUtf8IsReplacedBeforeNormalization) {
  struct Case {
    std::string bad;
    std::string replaced;  // the same text with U+FFFD written out
  };
  const std::string r = "\xEF\xBF\xBD";
  const std::vector<Case> cases = {
      {"cat\x80photo", "cat" + r + "photo"},
      {"a\xE2\x82 b", "a" + r + " b"},
      {"\xC0\xAF", r + r},
      {"\xE0\x80\xAF!", r + r + r + "!"},
      {"x\xED\xA0\x80y", "x" + r + r + r + "y"},
      {"\xFF", r},
      {"end\xF0\x9F\x90", "end" + r},
      // A replacement next to a combining mark: NFC sees U+FFFD, not the broken byte.
      {"\x80\xCC\x81", r + "\xCC\x81"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.replaced);
    const Tokenization bad = tokenizer().encode(c.bad);
    EXPECT_EQ(bad.ids, tokenizer().encode(c.replaced).ids);
    EXPECT_EQ(bad.ids.size(), 77u);
    EXPECT_EQ(bad.ids.front(), kBos);
  }
  // U+FFFD alone is id 39802 ("ï¿½</w>"), so "\xFF" must give exactly that.
  EXPECT_EQ(body_ids(tokenizer().encode("\xFF")), (std::vector<int64_t>{39802}));
}

TEST(ClipTokenizer, ArbitraryBytesNeverThrow) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (int shift = 0; shift < 256; shift += 17) {
    std::string s = all.substr(static_cast<size_t>(shift)) + all.substr(0, static_cast<size_t>(shift));
    Tokenization t;
    EXPECT_NO_THROW(t = tokenizer().encode(s));
    EXPECT_EQ(t.ids.size(), 77u);
    EXPECT_EQ(t.ids.front(), kBos);
    ASSERT_GE(t.tokens.size(), 2u);
    EXPECT_EQ(t.ids.at(t.tokens.size() - 1), kEos);
    EXPECT_EQ(t.tokens.back(), "<|endoftext|>");
  }
}

// ---- loading errors ------------------------------------------------------------------------

TEST(ClipTokenizerLoad, MissingFilesThrowModelErrorNamingTheFile) {
  try {
    ClipTokenizer::from_files("/nonexistent/vocab.json", kTokenizerDir + "/merges.txt");
    FAIL() << "no exception";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/vocab.json"), std::string::npos);
    EXPECT_EQ(e.code(), kExitModel);
  }
  try {
    ClipTokenizer::from_files(kTokenizerDir + "/vocab.json", "/nonexistent/merges.txt");
    FAIL() << "no exception";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/merges.txt"), std::string::npos);
  }
}

TEST(ClipTokenizerLoad, CorruptVocabOrMergesThrowModelError) {
  const std::string vocab = slurp(kTokenizerDir + "/vocab.json");
  const std::string merges = slurp(kTokenizerDir + "/merges.txt");
  ASSERT_FALSE(vocab.empty());
  ASSERT_FALSE(merges.empty());
  EXPECT_NO_THROW(ClipTokenizer::from_strings(vocab, merges));
  EXPECT_THROW(ClipTokenizer::from_strings(vocab.substr(0, vocab.size() / 2), merges), ModelError);
  EXPECT_THROW(ClipTokenizer::from_strings("", merges), ModelError);
  EXPECT_THROW(ClipTokenizer::from_strings("[1, 2]", merges), ModelError);
  EXPECT_THROW(ClipTokenizer::from_strings(R"({"a": "x"})", ""), ModelError);
  EXPECT_THROW(ClipTokenizer::from_strings(R"({"a": -1})", ""), ModelError);
  // Valid JSON, but without the BOS/EOS ids.
  EXPECT_THROW(ClipTokenizer::from_strings(R"({"a": 0})", ""), ModelError);
  // Merges lines that are not "left right", or name tokens the vocabulary lacks.
  EXPECT_THROW(ClipTokenizer::from_strings(vocab, "#version: 0.2\ni n x\n"), ModelError);
  EXPECT_THROW(ClipTokenizer::from_strings(vocab, "#version: 0.2\nin\n"), ModelError);
  EXPECT_THROW(ClipTokenizer::from_strings(vocab, "#version: 0.2\n\xE2\x98\x83 \xE2\x98\x83\n"), ModelError);
  TokenizerSpecialIds bad_pad;
  bad_pad.pad_id = 49408;
  EXPECT_THROW(ClipTokenizer::from_strings(vocab, merges, bad_pad), ModelError);
  TokenizerSpecialIds too_short;
  too_short.max_length = 1;
  EXPECT_THROW(ClipTokenizer::from_strings(vocab, merges, too_short), ModelError);
}

TEST(ClipTokenizerLoad, MergesWithCrlfAndWithoutHeader) {
  const std::string vocab = slurp(kTokenizerDir + "/vocab.json");
  std::string merges = slurp(kTokenizerDir + "/merges.txt");
  const ClipTokenizer plain = ClipTokenizer::from_strings(vocab, merges);
  std::string crlf;
  for (char ch : merges) {
    if (ch == '\n') crlf += '\r';
    crlf += ch;
  }
  const ClipTokenizer windows = ClipTokenizer::from_strings(vocab, crlf);
  const ClipTokenizer headless = ClipTokenizer::from_strings(vocab, merges.substr(merges.find('\n') + 1));
  const std::string prompt = "Sci-fi digital painting of an alien landscape, otherworldly";
  EXPECT_EQ(windows.encode(prompt).ids, plain.encode(prompt).ids);
  EXPECT_EQ(headless.encode(prompt).ids, plain.encode(prompt).ids);
}

TEST(ClipTokenizerLoad, MovedTokenizerStillWorks) {
  ClipTokenizer a = ClipTokenizer::from_files(kTokenizerDir + "/vocab.json", kTokenizerDir + "/merges.txt");
  ClipTokenizer b = std::move(a);
  EXPECT_EQ(body_ids(b.encode("picture frames")), (std::vector<int64_t>{1674, 15479}));
}

}  // namespace
}  // namespace sdinterp
