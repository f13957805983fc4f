// Without libFuzzer (g++ builds), a fuzz target still runs: over every file of
// its seed corpus and prefixes of each (see below), so CI replays the corpus and the
// regression inputs kept there on every run.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size);

int main(int argc, char** argv) {
  std::size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    for (auto const& entry : std::filesystem::recursive_directory_iterator(argv[i])) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
      // Every prefix of small inputs; of large ones (PEM chains, configs)
      // about 256 evenly spaced prefixes and the whole, which keeps the
      // replay of costly targets (a TLS context per input) to seconds.
      std::size_t const step = std::max<std::size_t>(1, bytes.size() / 256);
      for (std::size_t n = 0; n < bytes.size(); n += step) LLVMFuzzerTestOneInput(bytes.data(), n);
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++files;
    }
  }
  std::printf("replayed %zu inputs\n", files);
  return files > 0 ? 0 : 1;
}
