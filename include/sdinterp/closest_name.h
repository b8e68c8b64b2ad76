// The known name a mistyped one most likely meant, for "did you mean" hints: job keys, keyframe
// keys, commands and options all take it from here.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sdinterp {

// The name of `known` nearest to `given` when it is a few edits away (insert, delete, replace,
// swap two neighbours; at most a third of the name, at least 1), or, failing that, the first one
// `given` begins (a name cut short: "seamless" for "seamless-loop"; 3 characters at least).
// Compared as written; callers fold case or spelling ('_' for '-') first where they take it.
std::optional<std::string> closest_name(const std::string& given, const std::vector<std::string>& known);

}  // namespace sdinterp
