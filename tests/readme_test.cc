// The README is part of the product: the program it shows is examples/orders/main.cc exactly (the
// one CI builds three ways and runs, scripts/example-check), and its relative links name files of
// the repository. Documentation outside the repository is not linked at all.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The README's text outside ``` code blocks (a lambda's `[](...)` is not a link).
std::string prose_of(const std::string& markdown) {
  std::string prose;
  bool in_code = false;
  std::istringstream lines(markdown);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("```", 0) == 0) {
      in_code = !in_code;
      continue;
    }
    if (!in_code) prose += line + "\n";
  }
  return prose;
}

}  // namespace

TEST_CASE("the README shows examples/orders/main.cc as it is", "[docs]") {
  const std::string readme = read_text(KEEL_SOURCE_DIR "/README.md");
  const std::string example = read_text(KEEL_SOURCE_DIR "/examples/orders/main.cc");
  REQUIRE(example.find("int main(") != std::string::npos);
  INFO("copy examples/orders/main.cc into the README's code block after \"The example\"");
  CHECK(readme.find("```cpp\n" + example + "```\n") != std::string::npos);
}

TEST_CASE("every relative link of the README and of docs/ names a file of the repository",
          "[docs]") {
  const std::regex link(R"(\]\(([^)\s#]+)(#[^)\s]*)?\))");
  size_t checked = 0;
  for (const char* document : {"README.md", "docs/ARCHITECTURE.md", "docs/FAULTS.md"}) {
    const std::filesystem::path path = std::filesystem::path(KEEL_SOURCE_DIR) / document;
    const std::string prose = prose_of(read_text(path.string()));
    for (std::sregex_iterator it(prose.begin(), prose.end(), link), end; it != end; ++it) {
      const std::string target = (*it)[1];
      if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
      INFO(document << " links to " << target);
      CHECK(target.find("shared/") == std::string::npos);
      CHECK(std::filesystem::exists(path.parent_path() / target));
      ++checked;
    }
  }
  CHECK(checked >= 6);  // the pattern still finds the links
}
