#include "runtime/nvrtc.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <link.h>
#include <nvrtc.h>

#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include "dsl/error.h"
#include "runtime/cuda_driver.h"

namespace tigon::nvrtc {

namespace {

struct Api {
  std::string path;
  int major = 0, minor = 0;
  nvrtcResult (*version)(int *, int *);
  const char *(*getErrorString)(nvrtcResult);
  nvrtcResult (*createProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
  nvrtcResult (*destroyProgram)(nvrtcProgram *);
  nvrtcResult (*compileProgram)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*getProgramLogSize)(nvrtcProgram, size_t *);
  nvrtcResult (*getProgramLog)(nvrtcProgram, char *);
  nvrtcResult (*getPTXSize)(nvrtcProgram, size_t *);
  nvrtcResult (*getPTX)(nvrtcProgram, char *);
};

// site-packages of a loaded LibTorch (.../site-packages/torch/lib/libtorch*.so), or "".
std::string torchSitePackages() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *out) {
        namespace fs = std::filesystem;
        fs::path p = info->dlpi_name ? info->dlpi_name : "";
        if (p.filename().string().rfind("libtorch", 0) != 0 || p.parent_path().filename() != "lib" ||
            p.parent_path().parent_path().filename() != "torch")
          return 0;
        *static_cast<std::string *>(out) = p.parent_path().parent_path().parent_path().string();
        return 1;
      },
      &found);
  return found;
}

std::vector<std::string> candidates() {
  std::vector<std::string> dirs = {""};  // "": the default search path
  if (const char *home = std::getenv("CUDA_HOME"); home && *home) dirs.push_back(std::string(home) + "/lib64");
  dirs.push_back("/usr/local/cuda/lib64");
  if (std::string site = torchSitePackages(); !site.empty()) {
    dirs.push_back(site + "/nvidia/cu13/lib");
    dirs.push_back(site + "/nvidia/cuda_nvrtc/lib");
  }
  std::vector<std::string> out;
  for (const char *name : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"})
    for (const std::string &dir : dirs) out.push_back(dir.empty() ? name : dir + "/" + name);
  return out;
}

// The library at `path` with every entry point, or nullopt (and why).
std::optional<Api> open(const std::string &path, std::string &why) {
  void *lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return std::nullopt;
  Api api;
  bool ok = true;
  auto sym = [&](auto &fn, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) ok = false;
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  sym(api.version, "nvrtcVersion");
  sym(api.getErrorString, "nvrtcGetErrorString");
  sym(api.createProgram, "nvrtcCreateProgram");
  sym(api.destroyProgram, "nvrtcDestroyProgram");
  sym(api.compileProgram, "nvrtcCompileProgram");
  sym(api.getProgramLogSize, "nvrtcGetProgramLogSize");
  sym(api.getProgramLog, "nvrtcGetProgramLog");
  sym(api.getPTXSize, "nvrtcGetPTXSize");
  sym(api.getPTX, "nvrtcGetPTX");
  if (!ok || api.version(&api.major, &api.minor) != NVRTC_SUCCESS) {
    why += fmt::format("; {} lacks NVRTC entry points", path);
    dlclose(lib);
    return std::nullopt;
  }
  Dl_info info;
  api.path = dladdr(reinterpret_cast<void *>(api.version), &info) && info.dli_fname ? info.dli_fname : path;
  return api;
}

std::string g_whyNot;

const Api *load() {
  static std::once_flag once;
  static std::optional<Api> api;
  std::call_once(once, [] {
    int driverMajor = 0;  // 0: no driver, any NVRTC will do
    if (const cuda::Driver *d = cuda::tryDriver()) {
      int v = 0;
      if (d->cuDriverGetVersion(&v) == CUDA_SUCCESS) driverMajor = v / 1000;
    }
    std::string why;
    std::optional<Api> tooNew;
    for (const std::string &path : candidates()) {
      std::optional<Api> a = open(path, why);
      if (!a) continue;
      if (driverMajor && a->major > driverMajor) {
        if (!tooNew) tooNew = a;
        continue;
      }
      api = a;
      return;
    }
    api = tooNew;
    if (!api)
      g_whyNot = fmt::format("NVRTC not found (libnvrtc.so.13, .12 or libnvrtc.so in the library path, $CUDA_HOME/lib64, "
                             "/usr/local/cuda/lib64 or the pip package nvidia-cuda-nvrtc beside torch){}", why);
  });
  return api ? &*api : nullptr;
}

const Api &api() {
  const Api *a = load();
  if (!a) throw Error(g_whyNot);
  return *a;
}

// The compile log, followed by each source line it points at ("name.cu(123): error ...").
std::string explainLog(const std::string &log, const std::string &file, const std::string &source) {
  std::vector<std::string> lines;
  std::istringstream in(source);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::set<size_t> cited;
  std::string mark = file + "(";
  for (size_t at = log.find(mark); at != std::string::npos && cited.size() < 8; at = log.find(mark, at + 1))
    cited.insert(std::strtoul(log.c_str() + at + mark.size(), nullptr, 10));
  std::string out = log;
  for (size_t n : cited)
    if (n >= 1 && n <= lines.size()) out += fmt::format("\n  {}({}): {}", file, n, lines[n - 1]);
  return out;
}

}  // namespace

bool available(std::string *whyNot) {
  bool ok = load() != nullptr;
  if (!ok && whyNot) *whyNot = g_whyNot;
  return ok;
}

std::string version() { return fmt::format("{}.{}", api().major, api().minor); }

std::string libraryPath() { return api().path; }

std::string compileCuda(const std::string &source, const std::string &kernelName, const std::string &arch) {
  const Api &n = api();
  std::smatch m;
  if (!std::regex_match(arch, m, std::regex(R"(sm_(\d+[af]?))")))
    throw Error(fmt::format("unknown GPU arch '{}': the nvrtc backend compiles for sm_XY", arch));
  // compute_XY gives PTX, which the driver compiles to a cubin like the LLVM backend's PTX.
  std::string archOption = "--gpu-architecture=compute_" + m[1].str();
  const char *options[] = {archOption.c_str(), "--fmad=false", "--std=c++17"};
  std::string file = kernelName + ".cu";
  nvrtcProgram prog = nullptr;
  nvrtcResult r = n.createProgram(&prog, source.c_str(), file.c_str(), 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) throw Error(fmt::format("NVRTC cannot create a program for {}: {}", kernelName, n.getErrorString(r)));
  struct Destroy {
    const Api &n;
    nvrtcProgram &p;
    ~Destroy() { n.destroyProgram(&p); }
  } destroy{n, prog};

  r = n.compileProgram(prog, int(std::size(options)), options);
  size_t logSize = 0;
  std::string log;
  if (n.getProgramLogSize(prog, &logSize) == NVRTC_SUCCESS && logSize > 1) {
    log.resize(logSize);
    n.getProgramLog(prog, log.data());
    log.resize(logSize - 1);
  }
  if (r == NVRTC_ERROR_INVALID_OPTION)
    throw Error(fmt::format("NVRTC {} cannot compile for {}: {}", version(), arch, log));
  if (r != NVRTC_SUCCESS)
    throw Error(fmt::format("kernel {}: NVRTC {} rejected the generated CUDA C++ for {} ({}; a tigon bug):\n{}", kernelName,
                            version(), arch, n.getErrorString(r), explainLog(log, file, source)));
  size_t size = 0;
  std::string ptx;
  if ((r = n.getPTXSize(prog, &size)) == NVRTC_SUCCESS) {
    ptx.resize(size);
    r = n.getPTX(prog, ptx.data());
  }
  if (r != NVRTC_SUCCESS) throw Error(fmt::format("NVRTC gave no PTX for {}: {}", kernelName, n.getErrorString(r)));
  if (!ptx.empty() && ptx.back() == '\0') ptx.pop_back();
  return ptx;
}

}  // namespace tigon::nvrtc
