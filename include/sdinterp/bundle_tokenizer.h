// A bundle's tokenizer, read without loading any model (`sdinterp tokenize` needs no LibTorch).
#pragma once

#include <string>

#include "sdinterp/manifest.h"
#include "sdinterp/tokenizer.h"

namespace sdinterp {

// The tokenizer a bundle names, with its special ids (SD 2.x pads with 0). Needs no modules.
ClipTokenizer load_bundle_tokenizer(const std::string& dir, const Manifest& manifest);

}  // namespace sdinterp
