// Tables of an option's names and the enum values they stand for: one per option (--mode,
// --scheduler, --dither, ...), one helper to read and write them, one error style. No torch.
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sdinterp/errors.h"

namespace sdinterp {

template <typename E>
class NameTable {
 public:
  // `option` is how messages name the option ("--mode"); `entries` in the order help lists them.
  NameTable(std::string_view option, std::initializer_list<std::pair<E, std::string_view>> entries)
      : option_(option), entries_(entries) {}

  // The value named `name`; ConfigError `unknown OPTION "NAME"; choose one of: a, b, c` otherwise
  // (`option` overrides the table's, e.g. "keyframe 2: ease").
  E parse(std::string_view name, std::string_view option = {}) const {
    for (const auto& [value, text] : entries_) {
      if (text == name) return value;
    }
    throw ConfigError("unknown " + std::string(option.empty() ? option_ : option) + " \"" + std::string(name) +
                      "\"; choose one of: " + list());
  }
  // The name of `value`; std::logic_error for a value outside the table (a programming error).
  std::string name(E value) const {
    for (const auto& [v, text] : entries_) {
      if (v == value) return std::string(text);
    }
    throw std::logic_error("no name for a value of " + std::string(option_));
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : entries_) out.emplace_back(entry.second);
    return out;
  }
  // "a, b, c", for help texts.
  std::string list() const {
    std::string out;
    for (const auto& entry : entries_) out += (out.empty() ? "" : ", ") + std::string(entry.second);
    return out;
  }

 private:
  std::string_view option_;
  std::vector<std::pair<E, std::string_view>> entries_;
};

}  // namespace sdinterp
