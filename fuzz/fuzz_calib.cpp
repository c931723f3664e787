// Calibration inputs: a text cut into documents by each rule (auto, <|endoftext|>, blank lines,
// JSON lines with a field); the first byte picks the rule.
#include <string>

#include "awq/calib.h"
#include "base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const awq::DocSplit rules[] = {awq::DocSplit::Auto, awq::DocSplit::EndOfText,
                                        awq::DocSplit::Paragraphs, awq::DocSplit::JsonLines};
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    (void)awq::split_documents(text, rules[data[0] % 4], "text", "calib.jsonl");
  } catch (const awq::Error&) {
  }
  return 0;
}
