// Private Unicode helpers for the CLIP tokenizer: lossy UTF-8 decoding, NFC, the character
// classes of CLIP's pre-tokenizer regex and the lower-casing of the `tokenizers` library.
// Everything works on code points (char32_t) so the tokenizer can scan text without re-decoding.
#pragma once

#include <string>
#include <string_view>

namespace sdinterp::unicode {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes arbitrary bytes. Every maximal subpart of an ill-formed sequence (Unicode 15, section
// 3.9, "U+FFFD substitution of maximal subparts", the policy of Python's errors="replace" and of
// WHATWG) becomes one U+FFFD: lone continuation bytes, truncated sequences, overlong forms,
// surrogates (ED A0..BF ..), code points above U+10FFFF and the bytes C0, C1, F5..FF.
// The result therefore contains only Unicode scalar values.
std::u32string decode_utf8_lossy(std::string_view bytes);

// One step of that decoding at bytes[pos] (pos < size): either a well-formed character
// (valid, cp set) or one maximal ill-formed subpart (not valid, cp = U+FFFD); length >= 1.
struct DecodeStep {
  char32_t cp;
  size_t length;
  bool valid;
};
DecodeStep decode_step(std::string_view bytes, size_t pos);

// Appends the UTF-8 form of a scalar value (no surrogates, <= U+10FFFF).
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view text);

// Canonical composition (NFC) through utf8proc. Input must hold scalar values only (as
// decode_utf8_lossy returns). ASCII text is returned unchanged without calling utf8proc.
std::u32string nfc(std::u32string_view text);

// \p{L}: general category Lu, Ll, Lt, Lm or Lo.
bool is_letter(char32_t cp);
// \p{N}: general category Nd, Nl or No.
bool is_number(char32_t cp);
// \s as Oniguruma (the regex engine of `tokenizers`) defines it for Unicode text:
// U+0009..U+000D, U+0085 and the categories Zs, Zl, Zp (this equals the White_Space property).
bool is_whitespace(char32_t cp);

// Appends the full lower-case mapping of cp, as Rust's char::to_lowercase (used by the
// `tokenizers` Lowercase normalizer): the simple mapping, except U+0130 which lower-cases to
// two code points. No context-dependent rules (final sigma stays U+03C3).
void append_lowercase(std::u32string& out, char32_t cp);

}  // namespace sdinterp::unicode
