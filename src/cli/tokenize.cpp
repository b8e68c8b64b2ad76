// `sdinterp tokenize`: what of a prompt the model actually reads.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "sdinterp/bundle_tokenizer.h"

namespace sdinterp::cli {
namespace {

struct TokenizeOptions {
  std::string bundle_dir;
  std::vector<std::string> texts;
};

int run_tokenize(const TokenizeOptions& o) {
  const ClipTokenizer tokenizer = load_bundle_tokenizer(o.bundle_dir, load_manifest(o.bundle_dir));
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
  CLI::App* sub =
      app.add_subcommand("tokenize", "Print the token ids the model reads for each TEXT, one JSON line each");
  sub->add_option("--bundle", opts->bundle_dir, "Model bundle folder (with model.json)")->required();
  sub->add_option("text", opts->texts, "Texts to tokenize")->required();
  sub->callback([opts, &status] { status = run_tokenize(*opts); });
}

}  // namespace sdinterp::cli
