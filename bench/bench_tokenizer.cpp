// CLIP tokenizer speed: loading the files, encoding typical prompts (BPE cache warm) and words
// the cache has not seen.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "sdinterp/tokenizer.h"

namespace {

const std::string kDir = std::string(SDINTERP_MODELS_DIR) + "/tiny-sd/tokenizer";

const sdinterp::ClipTokenizer& tokenizer() {
  static const sdinterp::ClipTokenizer tok =
      sdinterp::ClipTokenizer::from_files(kDir + "/vocab.json", kDir + "/merges.txt");
  return tok;
}

void BM_LoadTokenizer(benchmark::State& state) {
  for (auto _ : state) {
    auto tok = sdinterp::ClipTokenizer::from_files(kDir + "/vocab.json", kDir + "/merges.txt");
    benchmark::DoNotOptimize(tok);
  }
}
BENCHMARK(BM_LoadTokenizer)->Unit(benchmark::kMillisecond);

void BM_EncodeShortPrompt(benchmark::State& state) {
  const std::string prompt = "a photo of a cat";
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer().encode(prompt));
}
BENCHMARK(BM_EncodeShortPrompt);

void BM_EncodeLongPrompt(benchmark::State& state) {
  const std::string prompt =
      "Epic shot of Sweden, ultra detailed lake with an ren dear, nostalgic vintage, ultra cozy "
      "and inviting, wonderful light atmosphere, fairy, little photorealistic, digital painting, "
      "sharp focus, ultra cozy and inviting, wish to be there. very detailed, arty, should rank "
      "high on youtube for a dream trip. café crème brûlée, naïve, 日本語のプロンプト 🐱🚀";
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer().encode(prompt));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * prompt.size()));
}
BENCHMARK(BM_EncodeLongPrompt);

// Every iteration uses words the BPE cache has not seen (a counter spelled in letters), so this
// measures the merge loop itself.
void BM_EncodeUncachedWords(benchmark::State& state) {
  uint64_t counter = 0;
  std::string prompt;
  for (auto _ : state) {
    prompt.clear();
    for (int w = 0; w < 16; ++w, ++counter) {
      prompt += "photorealistic";
      for (uint64_t n = counter; n != 0; n /= 26) prompt += static_cast<char>('a' + n % 26);
      prompt += ' ';
    }
    benchmark::DoNotOptimize(tokenizer().encode(prompt));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 16));
}
BENCHMARK(BM_EncodeUncachedWords);

void BM_EncodeLongWord(benchmark::State& state) {
  const std::string word(static_cast<size_t>(state.range(0)), 'a');
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer().encode(word));
  state.SetComplexityN(state.range(0));
}
BENCHMARK(BM_EncodeLongWord)->RangeMultiplier(8)->Range(64, 1 << 18)->Complexity();

}  // namespace

BENCHMARK_MAIN();
