#pragma once
// Image folders root/<class>/<image> (torchvision ImageFolder, as used for ImageNet-100).
//   classes   the sorted sub-folder names, or the lines of a class-list file (one folder name per line,
//             in label order; '#' comments and blank lines ignored) that selects a subset, e.g. the usual
//             100-class list of ImageNet-100. A listed class without a folder is an io_error.
//   samples   every file under a class folder (sub-folders included, symlinks followed, loops detected)
//             whose extension is .jpg/.jpeg/.png (any case), sorted by path within each class.
//   policy    what a bad file (unreadable, empty, not a JPEG/PNG, corrupt header, over the pixel cap)
//             found while scanning does: `fail` throws an io_error naming it; `skip` leaves it out and
//             counts it (skipped(), skipped_files(), and one line through options.log).
// The scan reads each file's header (verify = header) or decodes it whole (verify = full); decoding
// happens again when the image is used, and an error then is an io_error naming the file.
#include <sslgate/core/error.hpp>
#include <sslgate/data/dataset.hpp>
#include <sslgate/data/decode.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace sslgate::data {

enum class bad_file_policy { fail, skip };
enum class verify_mode { none, header, full };

struct image_folder_options {
  std::filesystem::path class_list;  // empty: every sub-folder, sorted
  bad_file_policy policy = bad_file_policy::fail;
  verify_mode verify = verify_mode::header;
  decode_limits limits;
  std::function<void(const std::string&)> log;  // receives the skip summary and each skipped file; null: stderr summary
};

class image_folder final : public dataset {
 public:
  explicit image_folder(const std::filesystem::path& root, image_folder_options opt = {}) : root_(root), opt_(std::move(opt)) { scan(); }

  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }
  int label(std::int64_t i) const override { return labels_[static_cast<std::size_t>(i)]; }
  image_view image(std::int64_t i, image_u8& scratch) const override {
    const auto& p = files_[static_cast<std::size_t>(i)];
    const auto bytes = detail::read_file(p, opt_.limits.max_bytes, "image_folder");
    decode_image(bytes, p.string(), scratch, opt_.limits);
    return scratch.view();
  }

  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<std::filesystem::path>& files() const { return files_; }
  std::int64_t skipped() const { return static_cast<std::int64_t>(skipped_.size()); }
  const std::vector<std::string>& skipped_files() const { return skipped_; }  // "path: reason"

 private:
  static bool has_image_extension(const std::filesystem::path& p) {
    std::string e = p.extension().string();
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return e == ".jpg" || e == ".jpeg" || e == ".png";
  }

  // A bad file or folder; msg names it.
  void bad(const std::string& msg) {
    if (opt_.policy == bad_file_policy::fail) throw io_error(msg.rfind("image_folder: ", 0) == 0 ? msg : "image_folder: " + msg);
    skipped_.push_back(msg);
    if (opt_.log) opt_.log("image_folder: skipped " + msg);
  }

  void read_class_list() {
    std::ifstream f(opt_.class_list);
    SSLGATE_CHECK(f.good(), io_error, "image_folder", "cannot open the class list {}", opt_.class_list.string());
    std::string line;
    std::set<std::string> seen;
    while (std::getline(f, line)) {
      while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
      std::size_t s = 0;
      while (s < line.size() && std::isspace(static_cast<unsigned char>(line[s]))) ++s;
      line = line.substr(s);
      if (line.empty() || line[0] == '#') continue;
      SSLGATE_CHECK(line.find('/') == std::string::npos && line != "." && line != "..", io_error, "image_folder",
                    "{}: '{}' is not a folder name", opt_.class_list.string(), line);
      SSLGATE_CHECK(seen.insert(line).second, io_error, "image_folder", "{}: class '{}' is listed twice", opt_.class_list.string(), line);
      classes_.push_back(line);
    }
    SSLGATE_CHECK(!classes_.empty(), io_error, "image_folder", "{} lists no class", opt_.class_list.string());
  }

  // Files under dir (recursively, symlinks followed; a directory seen before is a loop and is not re-entered).
  void walk(const std::filesystem::path& dir, std::set<std::filesystem::path>& visited, std::vector<std::filesystem::path>& out, int depth) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path canon = fs::canonical(dir, ec);
    if (ec) return bad(dir.string() + ": cannot resolve folder (" + ec.message() + ")");
    if (!visited.insert(canon).second || depth > 32) return bad(dir.string() + ": symlink loop");
    fs::directory_iterator it(dir, ec), end;
    if (ec) return bad(dir.string() + ": cannot read folder (" + ec.message() + ")");
    std::vector<fs::path> entries;
    for (; it != end; it.increment(ec)) {
      if (ec) return bad(dir.string() + ": cannot read folder (" + ec.message() + ")");
      entries.push_back(it->path());
    }
    std::sort(entries.begin(), entries.end());
    for (const auto& e : entries) {
      std::error_code sec;
      const auto st = fs::status(e, sec);  // follows symlinks
      if (!sec && fs::is_directory(st)) {
        walk(e, visited, out, depth + 1);
      } else if (has_image_extension(e)) {
        out.push_back(e);
      }
    }
  }

  void check_file(const std::filesystem::path& p, std::vector<std::filesystem::path>& good) {
    try {
      if (opt_.verify == verify_mode::none) {
        std::error_code ec;
        SSLGATE_CHECK(std::filesystem::is_regular_file(p, ec), io_error, "image_folder", "{} is not a readable file", p.string());
      } else {
        const auto bytes = detail::read_file(p, opt_.limits.max_bytes, "image_folder");
        if (opt_.verify == verify_mode::header) {
          probe_image(bytes, p.string(), opt_.limits);
        } else {
          image_u8 tmp;
          decode_image(bytes, p.string(), tmp, opt_.limits);
        }
      }
      good.push_back(p);
    } catch (const io_error& e) {
      if (opt_.policy == bad_file_policy::fail) throw;
      bad(e.what());
    }
  }

  void scan() {
    namespace fs = std::filesystem;
    std::error_code ec;
    SSLGATE_CHECK(fs::is_directory(root_, ec), io_error, "image_folder", "{} is not a readable folder", root_.string());
    if (!opt_.class_list.empty()) {
      read_class_list();
    } else {
      fs::directory_iterator it(root_, ec), end;
      SSLGATE_CHECK(!ec, io_error, "image_folder", "cannot read folder {}: {}", root_.string(), ec.message());
      for (; it != end; it.increment(ec)) {
        SSLGATE_CHECK(!ec, io_error, "image_folder", "cannot read folder {}: {}", root_.string(), ec.message());
        std::error_code sec;
        if (fs::is_directory(it->path(), sec)) classes_.push_back(it->path().filename().string());
      }
      std::sort(classes_.begin(), classes_.end());
      SSLGATE_CHECK(!classes_.empty(), io_error, "image_folder", "{} has no class folders", root_.string());
    }
    for (std::size_t k = 0; k < classes_.size(); ++k) {
      const fs::path dir = root_ / classes_[k];
      SSLGATE_CHECK(fs::is_directory(dir, ec), io_error, "image_folder", "class '{}' has no folder {}", classes_[k], dir.string());
      std::set<fs::path> visited;
      std::vector<fs::path> found, good;
      walk(dir, visited, found, 0);
      for (const auto& p : found) check_file(p, good);
      for (auto& p : good) {
        files_.push_back(std::move(p));
        labels_.push_back(static_cast<std::int32_t>(k));
      }
    }
    if (!skipped_.empty()) {
      const std::string summary = "image_folder: " + root_.string() + ": skipped " + std::to_string(skipped_.size()) + " bad file(s), kept " +
                                  std::to_string(files_.size());
      if (opt_.log)
        opt_.log(summary);
      else
        std::fprintf(stderr, "%s\n", summary.c_str());
    }
  }

  std::filesystem::path root_;
  image_folder_options opt_;
  std::vector<std::string> classes_;
  std::vector<std::filesystem::path> files_;
  std::vector<std::int32_t> labels_;
  std::vector<std::string> skipped_;
};

}  // namespace sslgate::data
