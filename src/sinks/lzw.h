// GIF's LZW compression, our own rather than giflib's so the quantizer can see the dictionary
// while choosing colours: when a colour that extends the current string is nearly as good as
// the best one, taking it shortens the file (the idea behind gifsicle's --lossy). The bytes
// produced are the image data's code stream; the writer hands them to giflib's EGifPutCode.
//
// A frame can be compressed in horizontal bands on several threads: each band but the last
// ends with a Clear code instead of End, the next band starts with a fresh dictionary (the
// state a decoder is in after a Clear), and the bands' bit streams are joined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sdinterp::sinks {

class LzwEncoder {
 public:
  // `min_code_size`: bits of the colour table (2..8), as GIF requires. A stream starts with
  // a Clear code; a band that continues another's stream (`continues` = true) does not.
  explicit LzwEncoder(int min_code_size, bool continues = false);

  // True when appending `symbol` extends the string being matched (costs no new code).
  bool extends(int symbol) const {
    if (current_ < 0) return false;
    asked_symbol_ = symbol;
    asked_code_ = child(current_, symbol);
    return asked_code_ >= 0;
  }
  // Calls f(symbol) for every symbol that extends the current string.
  template <typename F>
  void for_each_extension(F f) const {
    if (current_ < 0) return;
    for (int code = first_child_[current_]; code >= 0; code = next_sibling_[code]) f(symbol_of_[code]);
  }
  void put(int symbol);
  // Emits the pending string and then End, or Clear when another band's stream will follow.
  void end(bool more_follows = false);
  // Appends an ended band's bits to this (ended with more_follows) stream.
  void append(const LzwEncoder& band);
  // The code bytes (without GIF's sub-block lengths); call after end().
  std::vector<uint8_t> bytes();
  // end() and bytes() in one.
  std::vector<uint8_t> finish() {
    end();
    return bytes();
  }

 private:
  void emit(int code);
  void write_bits(uint32_t value, int count);
  void reset_table();
  // Code of the string `prefix` + `symbol`, or -1.
  int child(int prefix, int symbol) const {
    uint32_t key = static_cast<uint32_t>(prefix) << 8 | static_cast<uint32_t>(symbol);
    for (uint32_t h = slot_of(key);; h = (h + 1) & (kTableSize - 1)) {
      uint32_t entry = table_[h];
      if (entry == kEmpty) return -1;
      if ((entry >> 12) == key) return static_cast<int>(entry & 0xfff);
    }
  }
  static uint32_t slot_of(uint32_t key) { return (key * 2654435761u) >> (32 - kTableBits); }

  int min_code_size_;
  int clear_code_;
  int next_code_;
  int code_size_;
  int current_ = -1;
  // The last extends() answer, for the put() that usually follows with the same symbol.
  mutable int asked_symbol_ = -1;
  mutable int asked_code_ = -1;
  // Open-addressed (prefix, symbol) -> code, packed as key << 12 | code: small enough to
  // stay in cache (at most 4096 codes in 8192 slots), which matters as every pixel asks.
  static constexpr int kTableBits = 13;
  static constexpr uint32_t kTableSize = 1u << kTableBits;
  static constexpr uint32_t kEmpty = 0xffffffffu;
  std::vector<uint32_t> table_;
  // The same dictionary as a tree, to list a string's extensions without probing every symbol.
  std::vector<int16_t> first_child_;
  std::vector<int16_t> next_sibling_;
  std::vector<uint8_t> symbol_of_;
  uint32_t bit_buffer_ = 0;
  int bit_count_ = 0;
  std::vector<uint8_t> out_;
};

}  // namespace sdinterp::sinks
