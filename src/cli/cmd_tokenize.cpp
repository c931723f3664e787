// awq tokenize: text to token ids with the native tokenizer (tokenizer.json directory, a single
// tokenizer.json file, or a llama2.c tokenizer.bin).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "base/error.h"
#include "base/files.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace awq::cli {
namespace {

Tokenizer load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(path)) {
    if (path.ends_with(".bin")) {
      const GeneratedTokenizer g = tokenizer_json_from_llama2c(path);
      return Tokenizer::from_json(g.tokenizer_json, g.tokenizer_config_json, "", path);
    }
    return Tokenizer::from_json(read_text_file(path), "", "", path);
  }
  return Tokenizer::from_dir(path);
}

Registration reg([](CLI::App& app) {
  struct Opts {
    std::string tokenizer, file, text;
    bool json = false, no_special = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text");
  sub->add_option("--tokenizer", o->tokenizer,
                  "Directory with tokenizer.json (and tokenizer_config.json), a tokenizer.json "
                  "file, or a llama2.c tokenizer .bin")
      ->required();
  auto* file =
      sub->add_option("--file", o->file, "Read the text from this file (bytes as they are)");
  auto* text = sub->add_option("--text", o->text, "The text itself");
  file->excludes(text);
  text->excludes(file);
  sub->add_flag("--json", o->json, "Print a JSON array instead of space-separated ids");
  sub->add_flag("--no-special", o->no_special,
                "Do not add the post-processor's special tokens (BOS/EOS)");
  set_run(sub, [o, file, text] {
    AWQ_CHECK(file->count() + text->count() == 1, "tokenize: give exactly one of --file or --text");
    const Tokenizer tok = load_tokenizer(o->tokenizer);
    const std::string input = file->count() ? read_text_file(o->file) : o->text;
    const std::vector<int32_t> ids = tok.encode(input, !o->no_special);
    if (o->json) {
      fmt::print("[{}]\n", fmt::join(ids, ", "));
    } else {
      fmt::print("{}\n", fmt::join(ids, " "));
    }
  });
});

}  // namespace
}  // namespace awq::cli
