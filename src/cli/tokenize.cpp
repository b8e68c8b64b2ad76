// `sdinterp tokenize`: what of a prompt the model actually reads.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "sdinterp/manifest.h"
#include "sdinterp/tokenizer.h"

namespace sdinterp::cli {
namespace {

struct TokenizeOptions {
  std::string bundle_dir;
  std::vector<std::string> texts;
};

int run_tokenize(const TokenizeOptions& o) {
  const Manifest m = load_manifest(o.bundle_dir);
  TokenizerSpecialIds ids;
  ids.bos_id = m.tokenizer.bos_id;
  ids.eos_id = m.tokenizer.eos_id;
  ids.pad_id = m.tokenizer.pad_id;
  ids.max_length = m.tokenizer.max_length;
  const std::string root = o.bundle_dir + "/";
  const ClipTokenizer tokenizer = ClipTokenizer::from_files(root + m.tokenizer.vocab, root + m.tokenizer.merges, ids);
  for (const std::string& text : o.texts) {
    Tokenization t = tokenizer.encode(text);
    nlohmann::json line = {{"text", text}, {"ids", t.ids}, {"tokens", t.tokens}, {"truncated", t.truncated}};
    // Replace, not throw, on invalid UTF-8 in the echoed text: the tokenizer replaced it too.
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app, int& status) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand("tokenize", "Print the token ids the model reads for each TEXT, one JSON line each");
  sub->add_option("--bundle", opts->bundle_dir, "Model bundle folder (with model.json)")->required();
  sub->add_option("text", opts->texts, "Texts to tokenize")->required();
  sub->callback([opts, &status] { status = run_tokenize(*opts); });
}

}  // namespace sdinterp::cli
