// The README is part of the product: the program it shows is examples/orders/main.cc exactly (the
// one CI builds three ways and runs, scripts/example-check), and its relative links name files of
// the repository. Documentation outside the repository is not linked at all.
#include <catch2/catch.hpp>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
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

// The names of the Catch2 test cases, sections and rapidcheck properties in `source`: the string
// literals (adjacent ones joined) that open TEST_CASE(, SECTION( and rc::prop(.
void collect_test_names(const std::string& source, std::set<std::string>& names) {
  for (const char* opener : {"TEST_CASE(", "SECTION(", "rc::prop("}) {
    for (size_t at = source.find(opener); at != std::string::npos;
         at = source.find(opener, at + 1)) {
      size_t i = at + std::strlen(opener);
      std::string name;
      bool any = false;
      while (true) {
        while (i < source.size() && std::isspace(static_cast<unsigned char>(source[i]))) ++i;
        if (i >= source.size() || source[i] != '"') break;
        any = true;
        for (++i; i < source.size() && source[i] != '"'; ++i) {
          if (source[i] == '\\' && i + 1 < source.size()) ++i;
          name.push_back(source[i]);
        }
        ++i;  // the closing quote
      }
      if (any) names.insert(name);
    }
  }
}

}  // namespace

TEST_CASE("every test docs/GUARANTEES.md names as proof exists", "[docs]") {
  std::set<std::string> names;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(KEEL_SOURCE_DIR "/tests")) {
    if (entry.path().extension() == ".cc") collect_test_names(read_text(entry.path()), names);
  }
  REQUIRE(names.count("every test docs/GUARANTEES.md names as proof exists") == 1);
  const std::string guarantees = read_text(KEEL_SOURCE_DIR "/docs/GUARANTEES.md");
  size_t cited = 0;
  std::istringstream rows(guarantees);
  for (std::string row; std::getline(rows, row);) {
    if (row.rfind("| **", 0) != 0) continue;  // a guarantee's row: | **claim** | `test`, ... |
    const size_t last_cell = row.rfind('|', row.size() - 2);
    std::string proofs = row.substr(last_cell);
    for (size_t open = proofs.find('`'); open != std::string::npos;
         open = proofs.find('`', open + 1)) {
      const size_t close = proofs.find('`', open + 1);
      REQUIRE(close != std::string::npos);
      const std::string name = proofs.substr(open + 1, close - open - 1);
      INFO("docs/GUARANTEES.md cites a test that does not exist: " << name);
      CHECK(names.count(name) == 1);
      ++cited;
      open = close;
    }
  }
  CHECK(cited >= 30);  // the rows were found
}

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
  for (const char* document :
       {"README.md", "docs/ARCHITECTURE.md", "docs/BENCHMARKS.md", "docs/FAULTS.md",
        "docs/GUARANTEES.md", "docs/REPLICATION.md"}) {
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
