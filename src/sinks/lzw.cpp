#include "sinks/lzw.h"

#include <algorithm>

namespace sdinterp::sinks {
namespace {
constexpr int kMaxCode = 4095;  // GIF codes are at most 12 bits
}

LzwEncoder::LzwEncoder(int min_code_size, bool continues)
    : min_code_size_(min_code_size),
      clear_code_(1 << min_code_size),
      next_code_(clear_code_ + 2),
      code_size_(min_code_size + 1),
      table_(kTableSize, kEmpty),
      first_child_(kMaxCode + 1, -1),
      next_sibling_(kMaxCode + 1, -1),
      symbol_of_(kMaxCode + 1, 0) {
  if (!continues) emit(clear_code_);
}

void LzwEncoder::reset_table() {
  std::fill(table_.begin(), table_.end(), kEmpty);
  std::fill(first_child_.begin(), first_child_.end(), -1);
  next_code_ = clear_code_ + 2;
  code_size_ = min_code_size_ + 1;
}

void LzwEncoder::write_bits(uint32_t value, int count) {
  bit_buffer_ |= value << bit_count_;
  bit_count_ += count;
  while (bit_count_ >= 8) {
    out_.push_back(static_cast<uint8_t>(bit_buffer_ & 0xff));
    bit_buffer_ >>= 8;
    bit_count_ -= 8;
  }
}

void LzwEncoder::emit(int code) {
  write_bits(static_cast<uint32_t>(code), code_size_);
  // The decoder widens its codes once the next code it will assign no longer fits; it lags
  // the encoder by one entry, hence the test before this emission's entry is added.
  if (next_code_ >= (1 << code_size_) && code_size_ < 12) ++code_size_;
}

void LzwEncoder::put(int symbol) {
  if (current_ < 0) {
    current_ = symbol;
    return;
  }
  int code = symbol == asked_symbol_ ? asked_code_ : child(current_, symbol);
  asked_symbol_ = -1;
  if (code >= 0) {
    current_ = code;
    return;
  }
  int prefix = current_;
  emit(current_);
  current_ = symbol;
  if (next_code_ >= kMaxCode) {
    emit(clear_code_);
    reset_table();
  } else {
    uint32_t key = static_cast<uint32_t>(prefix) << 8 | static_cast<uint32_t>(symbol);
    uint32_t h = slot_of(key);
    while (table_[h] != kEmpty) h = (h + 1) & (kTableSize - 1);
    table_[h] = key << 12 | static_cast<uint32_t>(next_code_);
    symbol_of_[next_code_] = static_cast<uint8_t>(symbol);
    next_sibling_[next_code_] = first_child_[prefix];
    first_child_[prefix] = static_cast<int16_t>(next_code_);
    ++next_code_;
  }
}

void LzwEncoder::end(bool more_follows) {
  if (current_ >= 0) emit(current_);
  current_ = -1;
  emit(more_follows ? clear_code_ : clear_code_ + 1);
}

void LzwEncoder::append(const LzwEncoder& band) {
  for (uint8_t byte : band.out_) write_bits(byte, 8);
  if (band.bit_count_ > 0) write_bits(band.bit_buffer_, band.bit_count_);
}

std::vector<uint8_t> LzwEncoder::bytes() {
  if (bit_count_ > 0) out_.push_back(static_cast<uint8_t>(bit_buffer_ & 0xff));
  bit_buffer_ = 0;
  bit_count_ = 0;
  return std::move(out_);
}

}  // namespace sdinterp::sinks
