// Parsing and validation of the kernel manifest. Every check names the JSON field it is about,
// so a corrupt or hand-edited manifest is diagnosed here, never at launch time.
#include "runtime/Manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace attnc::rt {

using json = nlohmann::json;

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::I32: return "i32";
  case DType::I8: return "i8";
  case DType::F8E4M3: return "f8e4m3";
  case DType::I4: return "i4";
  }
  return "?";
}

int64_t dtypeBytes(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32: return 4;
  case DType::F16:
  case DType::BF16: return 2;
  case DType::I8:
  case DType::F8E4M3:
  case DType::I4: return 1;
  }
  return 1;
}

int Manifest::dimIndex(std::string_view name) const {
  for (size_t d = 0; d < dims.size(); ++d)
    if (dims[d].name == name)
      return int(d);
  return -1;
}

std::string Manifest::argNames() const {
  std::string out;
  for (const Arg &a : args)
    out += (out.empty() ? "" : ", ") + a.name;
  return out;
}

namespace {

/// Typed access to JSON fields that records the first error with the field's path.
class Reader {
public:
  std::string error;

  bool fail(const std::string &path, const std::string &what) {
    if (error.empty())
      error = "manifest: field '" + path + "' " + what;
    return false;
  }

  /// The member `key` of `obj`, or null (with an error if `required`).
  const json *member(const json &obj, const std::string &key, const std::string &path,
                     bool required = true) {
    auto it = obj.find(key);
    if (it != obj.end())
      return &*it;
    if (required && error.empty())
      error = "manifest: missing field '" + path + "'";
    return nullptr;
  }

  bool getString(const json &obj, const std::string &key, const std::string &path,
                 std::string &out, bool required = true) {
    const json *v = member(obj, key, path, required);
    if (!v)
      return !required;
    if (!v->is_string())
      return fail(path, std::string("must be a string, got ") + v->type_name());
    out = v->get<std::string>();
    return true;
  }

  bool getInt(const json &obj, const std::string &key, const std::string &path, int64_t lo,
              int64_t hi, int64_t &out, bool required = true) {
    const json *v = member(obj, key, path, required);
    if (!v)
      return !required;
    return toInt(*v, path, lo, hi, out);
  }

  bool toInt(const json &v, const std::string &path, int64_t lo, int64_t hi, int64_t &out) {
    if (!v.is_number_integer())
      return fail(path, std::string("must be an integer, got ") + v.type_name());
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      return fail(path, "is out of range");
    out = v.get<int64_t>();
    if (out < lo || out > hi)
      return fail(path, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                            "], got " + std::to_string(out));
    return true;
  }

  bool getBool(const json &obj, const std::string &key, const std::string &path, bool &out,
               bool required = true) {
    const json *v = member(obj, key, path, required);
    if (!v)
      return !required;
    if (!v->is_boolean())
      return fail(path, std::string("must be true or false, got ") + v->type_name());
    out = v->get<bool>();
    return true;
  }

  const json *getArray(const json &obj, const std::string &key, const std::string &path) {
    const json *v = member(obj, key, path);
    if (v && !v->is_array()) {
      fail(path, std::string("must be an array, got ") + v->type_name());
      return nullptr;
    }
    return v;
  }

  bool isObject(const json &v, const std::string &path) {
    return v.is_object() || fail(path, std::string("must be an object, got ") + v.type_name());
  }
};

template <typename T, size_t N>
bool parseEnum(Reader &r, const json &obj, const std::string &key, const std::string &path,
               const std::pair<const char *, T> (&table)[N], T &out) {
  std::string text;
  if (!r.getString(obj, key, path, text))
    return false;
  std::string choices;
  for (const auto &[name, value] : table) {
    if (text == name) {
      out = value;
      return true;
    }
    choices += (choices.empty() ? "" : ", ") + std::string(name);
  }
  return r.fail(path, "must be one of " + choices + ", got '" + text + "'");
}

constexpr std::pair<const char *, DType> kDTypes[] = {
    {"f32", DType::F32}, {"f16", DType::F16},       {"bf16", DType::BF16}, {"i32", DType::I32},
    {"i8", DType::I8},   {"f8e4m3", DType::F8E4M3}, {"i4", DType::I4}};
constexpr std::pair<const char *, ArgKind> kKinds[] = {{"input", ArgKind::Input},
                                                       {"param", ArgKind::Param},
                                                       {"output", ArgKind::Output},
                                                       {"lse", ArgKind::Lse},
                                                       {"state", ArgKind::State}};

bool isIdentifier(const std::string &s) {
  if (s.empty() || !(std::isalpha((unsigned char)s[0]) || s[0] == '_'))
    return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum((unsigned char)c) || c == '_' || c == '$'; });
}

/// "sm_80" -> 8.0, "sm_90a" -> 9.0 + 'a', "sm_100f" -> 10.0 + 'f'.
bool parseArch(Reader &r, Manifest &m) {
  const std::string &a = m.arch;
  size_t end = a.size();
  char suffix = 0;
  if (end > 3 && (a[end - 1] == 'a' || a[end - 1] == 'f'))
    suffix = a[--end];
  bool digits = end > 4 && a.compare(0, 3, "sm_") == 0 &&
                std::all_of(a.begin() + 3, a.begin() + end, [](char c) { return std::isdigit((unsigned char)c); });
  if (!digits || end - 3 > 4)
    return r.fail("arch", "must look like sm_80 or sm_90a, got '" + a + "'");
  int number = std::stoi(a.substr(3, end - 3));
  m.archMajor = number / 10;
  m.archMinor = number % 10;
  m.archSuffix = suffix;
  return true;
}

/// A thread block [x, y, z] within CUDA's limits: `block` and `split_kv.combine_block`.
bool parseBlock(Reader &r, const json &obj, const std::string &key, const std::string &path,
                std::array<uint32_t, 3> &out) {
  const json *block = r.getArray(obj, key, path);
  if (!block)
    return false;
  if (block->size() != 3)
    return r.fail(path, "must have 3 entries (x, y, z), got " + std::to_string(block->size()));
  const int64_t limits[3] = {1024, 1024, 64};
  int64_t threads = 1;
  for (int a = 0; a < 3; ++a) {
    int64_t v;
    if (!r.toInt((*block)[a], path + "[" + std::to_string(a) + "]", 1, limits[a], v))
      return false;
    out[a] = uint32_t(v);
    threads *= v;
  }
  if (threads > 1024)
    return r.fail(path, "asks for " + std::to_string(threads) +
                            " threads per block, over CUDA's limit of 1024");
  return true;
}

bool parseDim(Reader &r, const json &j, const std::string &path, Manifest &m, Dim &d) {
  if (!r.isObject(j, path) || !r.getString(j, "name", path + ".name", d.name) ||
      !r.getString(j, "role", path + ".role", d.role))
    return false;
  if (!isIdentifier(d.name))
    return r.fail(path + ".name", "must be an identifier, got '" + d.name + "'");
  if (m.dimIndex(d.name) >= 0)
    return r.fail(path + ".name", "repeats dim '" + d.name + "'");
  if (!r.getInt(j, "static", path + ".static", 0, INT64_MAX, d.staticSize, false))
    return false;
  if (!r.getInt(j, "min", path + ".min", 0, 1, d.minSize, false))
    return false;
  return true;
}

/// Resolves `derived.source` once every dim is known (a source may be listed after its user).
bool parseDerived(Reader &r, const json &j, const std::string &path, Manifest &m, Dim &d) {
  // `alias`: the same extent as another dim (`j : kv_len = i`), i.e. derived with divisor 1
  if (r.member(j, "alias", path + ".alias", false)) {
    std::string source;
    if (!r.getString(j, "alias", path + ".alias", source))
      return false;
    d.derivedSource = m.dimIndex(source);
    d.divisor = 1;
    if (d.derivedSource < 0)
      return r.fail(path + ".alias", "names unknown dim '" + source + "'");
    if (&m.dims[size_t(d.derivedSource)] == &d)
      return r.fail(path + ".alias", "must name another dim, got '" + source + "'");
  }
  const json *derived = r.member(j, "derived", path + ".derived", false);
  if (!derived)
    return true;
  std::string source;
  if (!r.isObject(*derived, path + ".derived") ||
      !r.getString(*derived, "source", path + ".derived.source", source) ||
      !r.getInt(*derived, "divisor", path + ".derived.divisor", 1, INT64_MAX, d.divisor))
    return false;
  d.derivedSource = m.dimIndex(source);
  if (d.derivedSource < 0)
    return r.fail(path + ".derived.source", "names unknown dim '" + source + "'");
  if (&m.dims[size_t(d.derivedSource)] == &d)
    return r.fail(path + ".derived.source", "must name another dim, got '" + source + "'");
  return true;
}

bool parseDims(Reader &r, const json &root, Manifest &m) {
  const json *dims = r.getArray(root, "dims", "dims");
  if (!dims)
    return false;
  for (size_t n = 0; n < dims->size(); ++n) {
    Dim d;
    if (!parseDim(r, (*dims)[n], "dims[" + std::to_string(n) + "]", m, d))
      return false;
    m.dims.push_back(std::move(d));
  }
  for (size_t n = 0; n < dims->size(); ++n)
    if (!parseDerived(r, (*dims)[n], "dims[" + std::to_string(n) + "]", m, m.dims[n]))
      return false;
  // Chains through aliases collapse onto their root (`dv = d`, `m = hk` with hk = h / 4), so
  // the argument checks resolve every derived dim from a source that is not; one division per
  // chain (hk = h / 4, not hk2 = hk / 2).
  std::vector<int> source(m.dims.size());
  std::vector<int64_t> divisor(m.dims.size());
  for (size_t n = 0; n < m.dims.size(); ++n) {
    int at = m.dims[n].derivedSource;
    int64_t div = m.dims[n].divisor;
    bool divided = div > 1;
    for (size_t steps = 0; at >= 0 && m.dims[size_t(at)].derivedSource >= 0; ++steps) {
      const Dim &link = m.dims[size_t(at)];
      std::string where = "dims[" + std::to_string(n) + "]";
      if (steps > m.dims.size())
        return r.fail(where, "dim '" + m.dims[n].name + "' is derived from itself");
      if (link.divisor > 1 && divided)
        return r.fail(where + ".derived.source",
                      "names '" + link.name + "', which is itself derived");
      divided |= link.divisor > 1;
      div *= link.divisor;
      at = link.derivedSource;
    }
    source[n] = at, divisor[n] = div;
  }
  for (size_t n = 0; n < m.dims.size(); ++n)
    if (m.dims[n].derivedSource >= 0)
      m.dims[n].derivedSource = source[n], m.dims[n].divisor = divisor[n];
  return true;
}

bool parseDimList(Reader &r, const json &j, const std::string &key, const std::string &path,
                  const Manifest &m, std::vector<int> &out) {
  const json *list = r.getArray(j, key, path);
  if (!list)
    return false;
  for (size_t n = 0; n < list->size(); ++n) {
    const json &e = (*list)[n];
    std::string at = path + "[" + std::to_string(n) + "]";
    if (!e.is_string())
      return r.fail(at, std::string("must be a dim name, got ") + e.type_name());
    int d = m.dimIndex(e.get<std::string>());
    if (d < 0)
      return r.fail(at, "names unknown dim '" + e.get<std::string>() + "'");
    if (std::find(out.begin(), out.end(), d) != out.end())
      return r.fail(at, "repeats dim '" + e.get<std::string>() + "'");
    out.push_back(d);
  }
  return true;
}

bool isPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

/// `packed`: i4 arguments must say 2 (values per byte along the last canonical axis), all others
/// 1 or nothing.
bool parsePacked(Reader &r, const json &j, const std::string &path, Arg &a) {
  int64_t want = a.dtype == DType::I4 ? 2 : 1;
  if (!r.getInt(j, "packed", path + ".packed", 1, 64, a.packed, want != 1))
    return false;
  if (a.packed != want)
    return r.fail(path + ".packed", "must be " + std::to_string(want) + " for dtype " +
                                        dtypeName(a.dtype) + ", got " + std::to_string(a.packed));
  if (a.packed > 1 && a.dims.empty())
    return r.fail(path + ".packed", "needs an axis to pack, but the argument has rank 0");
  return true;
}

bool parseArg(Reader &r, const json &j, const std::string &path, const Manifest &m, Arg &a) {
  if (!r.isObject(j, path) || !r.getString(j, "name", path + ".name", a.name) ||
      !parseEnum(r, j, "kind", path + ".kind", kKinds, a.kind) ||
      !parseEnum(r, j, "dtype", path + ".dtype", kDTypes, a.dtype) ||
      !parseDimList(r, j, "dims", path + ".dims", m, a.dims) ||
      !parseDimList(r, j, "storage_dims", path + ".storage_dims", m, a.storageDims) ||
      !r.getBool(j, "unit_stride_last", path + ".unit_stride_last", a.unitStrideLast) ||
      !r.getInt(j, "alignment", path + ".alignment", 1, 1 << 20, a.alignment) ||
      !r.getInt(j, "row_alignment", path + ".row_alignment", 0, 1 << 20, a.rowAlignment) ||
      !r.getBool(j, "zeroed", path + ".zeroed", a.zeroed, false))
    return false;
  if (a.zeroed && (a.kind != ArgKind::Output || a.dtype != DType::F32))
    return r.fail(path + ".zeroed", "is only for f32 outputs (gradients summed by atomic adds)");
  if (!isIdentifier(a.name))
    return r.fail(path + ".name", "must be an identifier, got '" + a.name + "'");
  if (!isPowerOfTwo(a.alignment))
    return r.fail(path + ".alignment", "must be a power of two, got " + std::to_string(a.alignment));
  if (!std::is_permutation(a.dims.begin(), a.dims.end(), a.storageDims.begin(), a.storageDims.end()))
    return r.fail(path + ".storage_dims", "must be a permutation of " + path + ".dims");
  return parsePacked(r, j, path, a);
}

bool parseArgs(Reader &r, const json &root, Manifest &m) {
  const json *args = r.getArray(root, "args", "args");
  if (!args)
    return false;
  if (args->empty())
    return r.fail("args", "must not be empty");
  for (size_t n = 0; n < args->size(); ++n) {
    Arg a;
    std::string path = "args[" + std::to_string(n) + "]";
    if (!parseArg(r, (*args)[n], path, m, a))
      return false;
    for (const Arg &b : m.args)
      if (b.name == a.name)
        return r.fail(path + ".name", "repeats argument '" + a.name + "'");
    m.args.push_back(std::move(a));
  }
  return true;
}

/// True if the extent of dim `d` is known once the arguments are: it is in an argument, static,
/// or derived from / the source of such a dim.
bool dimIsBound(const Manifest &m, int d) {
  auto inArg = [&](int x) {
    return std::any_of(m.args.begin(), m.args.end(), [&](const Arg &a) {
      return std::find(a.dims.begin(), a.dims.end(), x) != a.dims.end();
    });
  };
  const Dim &dim = m.dims[size_t(d)];
  if (inArg(d) || dim.staticSize >= 0)
    return true;
  if (dim.derivedSource >= 0 && inArg(dim.derivedSource))
    return true;
  for (size_t o = 0; o < m.dims.size(); ++o)
    if (m.dims[o].derivedSource == d && inArg(int(o)))
      return true;
  return false;
}

bool parseGridAxis(Reader &r, const json &j, const std::string &path, const Manifest &m,
                   GridAxis &g) {
  if (!r.isObject(j, path) || !r.getInt(j, "scale", path + ".scale", 1, INT32_MAX, g.scale, false) ||
      !r.getBool(j, "splits", path + ".splits", g.splits, false))
    return false;
  if (g.splits && !m.splitKV)
    return r.fail(path + ".splits", "is true, but the manifest has no split_kv");
  std::string name;
  if (const json *blocks = r.member(j, "blocks", path, false)) {  // a fixed count
    g.dim = -1;
    return r.toInt(*blocks, path + ".blocks", 1, 65535, g.blocks);
  }
  if (const json *dim = r.member(j, "dim", path, false)) {
    if (!dim->is_string())
      return r.fail(path + ".dim", std::string("must be a dim name, got ") + dim->type_name());
    name = dim->get<std::string>();
  } else if (const json *cd = r.member(j, "ceil_div", path, false)) {
    if (!cd->is_array() || cd->size() != 2 || !(*cd)[0].is_string())
      return r.fail(path + ".ceil_div", "must be [DIM_NAME, DIVISOR]");
    name = (*cd)[0].get<std::string>();
    if (!r.toInt((*cd)[1], path + ".ceil_div[1]", 1, INT32_MAX, g.divisor))
      return false;
  } else {
    return r.fail(path, "must be {\"dim\": NAME}, {\"ceil_div\": [NAME, N]} or {\"blocks\": N}");
  }
  g.dim = m.dimIndex(name);
  if (g.dim < 0)
    return r.fail(path, "names unknown dim '" + name + "'");
  if (!dimIsBound(m, g.dim))
    return r.fail(path, "uses dim '" + name + "', which no argument determines");
  return true;
}

/// Three grid axes x, y, z: `grid` and `split_kv.combine_grid`.
bool parseGrid(Reader &r, const json &obj, const std::string &key, const std::string &path,
               const Manifest &m, std::array<GridAxis, 3> &out) {
  const json *grid = r.getArray(obj, key, path);
  if (!grid)
    return false;
  if (grid->size() != 3)
    return r.fail(path, "must have 3 entries (x, y, z), got " + std::to_string(grid->size()));
  for (int a = 0; a < 3; ++a)
    if (!parseGridAxis(r, (*grid)[a], path + "[" + std::to_string(a) + "]", m, out[a]))
      return false;
  return true;
}

/// The dim with `role`, which must be unique; with `bound`, an argument must determine it.
bool findRole(Reader &r, const Manifest &m, const char *role, bool bound, int &out) {
  out = -1;
  for (size_t d = 0; d < m.dims.size(); ++d) {
    if (m.dims[d].role != role)
      continue;
    if (out >= 0)
      return r.fail("split_kv", std::string("needs one dim with role '") + role + "', but '" +
                                    m.dims[size_t(out)].name + "' and '" + m.dims[d].name + "' have it");
    out = int(d);
  }
  if (out < 0)
    return r.fail("split_kv", std::string("needs a dim with role '") + role + "' (the workspace is [splits, "
                                  "batch, q_head, q_seq, value_dim])");
  if (bound && !dimIsBound(m, out))
    return r.fail("split_kv", "needs the extent of dim '" + m.dims[size_t(out)].name + "' (role " + role +
                                  "), which no argument determines");
  return true;
}

/// The one argument of `kind`: the combine kernel writes the output and the lse.
bool findArg(Reader &r, const Manifest &m, ArgKind kind, const char *kindName, int &out) {
  out = -1;
  for (size_t a = 0; a < m.args.size(); ++a)
    if (m.args[a].kind == kind) {
      if (out >= 0)
        return r.fail("split_kv", std::string("needs one argument of kind ") + kindName + ", got '" +
                                      m.args[size_t(out)].name + "' and '" + m.args[a].name + "'");
      out = int(a);
    }
  if (out < 0)
    return r.fail("split_kv", std::string("needs an argument of kind ") + kindName +
                                  " (the combine kernel writes it)");
  return true;
}

/// The optional `backward` object: the dK/dV kernel and the workspace D's dims.
bool parseBackward(Reader &r, const json &root, Manifest &m) {
  const json *j = r.member(root, "backward", "backward", false);
  if (!j)
    return true;
  if (!r.isObject(*j, "backward"))
    return false;
  if (m.splitKV)
    return r.fail("backward", "cannot be combined with split_kv");
  Backward bw;
  int64_t smem;
  std::vector<int> delta;
  if (!r.getString(*j, "dkdv_entry", "backward.dkdv_entry", bw.dkdvEntry) ||
      !parseBlock(r, *j, "dkdv_block", "backward.dkdv_block", bw.dkdvBlock) ||
      !r.getInt(*j, "dkdv_dynamic_shared_memory", "backward.dkdv_dynamic_shared_memory", 0,
                UINT32_MAX, smem) ||
      !parseDimList(r, *j, "delta_dims", "backward.delta_dims", m, delta) ||
      !parseGrid(r, *j, "dkdv_grid", "backward.dkdv_grid", m, bw.dkdvGrid))
    return false;
  if (!isIdentifier(bw.dkdvEntry) || bw.dkdvEntry == m.entry)
    return r.fail("backward.dkdv_entry", "must be a PTX symbol name other than entry, got '" +
                                             bw.dkdvEntry + "'");
  if (delta.size() != 3)
    return r.fail("backward.delta_dims", "must name the 3 dims of D [b, h, i]");
  for (int d : delta)
    if (!dimIsBound(m, d))
      return r.fail("backward.delta_dims", "needs the extent of dim '" + m.dims[size_t(d)].name +
                                               "', which no argument determines");
  if (j->contains("dq_entry") || j->contains("dq_accum_width")) {
    if (!r.getString(*j, "dq_entry", "backward.dq_entry", bw.dqEntry) ||
        !r.getInt(*j, "dq_accum_width", "backward.dq_accum_width", 1, 1 << 16, bw.dqAccumWidth))
      return false;
    if (!isIdentifier(bw.dqEntry) || bw.dqEntry == m.entry || bw.dqEntry == bw.dkdvEntry)
      return r.fail("backward.dq_entry", "must be a PTX symbol name other than entry and "
                                         "dkdv_entry, got '" + bw.dqEntry + "'");
  }
  if (j->contains("dy_width") &&
      !r.getInt(*j, "dy_width", "backward.dy_width", 1, 1 << 16, bw.dyWidth))
    return false;
  if (j->contains("scores")) {
    if (!r.getInt(*j, "scores", "backward.scores", 1, 64, bw.scores))
      return false;
    if (bw.scores > 1 && !bw.dyWidth)
      return r.fail("backward.scores", "several scores need dy_width (the mix's dy per score)");
    if (bw.scores > 1 && !bw.dqEntry.empty())
      return r.fail("backward.scores", "several scores compute dQ in the first kernel: no "
                                       "dq_entry");
  }
  // The kernels address three slots (row sums, column sums, cumulative log decays): a
  // manifest that sizes the workspace otherwise would let them write past it.
  if (j->contains("decay_slots") &&
      !r.getInt(*j, "decay_slots", "backward.decay_slots", 3, 3, bw.decaySlots))
    return false;
  if (j->contains("decay_entry")) {
    if (!bw.decaySlots)
      return r.fail("backward.decay_entry", "needs decay_slots (the forget gate's workspace)");
    if (!r.getString(*j, "decay_entry", "backward.decay_entry", bw.decayEntry) ||
        !parseBlock(r, *j, "decay_block", "backward.decay_block", bw.decayBlock) ||
        !parseGrid(r, *j, "decay_grid", "backward.decay_grid", m, bw.decayGrid))
      return false;
    if (!isIdentifier(bw.decayEntry) || bw.decayEntry == m.entry ||
        bw.decayEntry == bw.dkdvEntry || bw.decayEntry == bw.dqEntry)
      return r.fail("backward.decay_entry", "must be a PTX symbol name other than entry, "
                                            "dkdv_entry and dq_entry, got '" + bw.decayEntry + "'");
    if (bw.scores > 1 || !bw.dqEntry.empty())
      return r.fail("backward.decay_entry", "a forget gate's backward takes one score and dQ "
                                            "in the first kernel (no scores, no dq_entry)");
  }
  bw.dkdvSharedMemory = uint32_t(smem);
  std::copy(delta.begin(), delta.end(), bw.deltaDims.begin());
  m.backward = bw;
  return true;
}

/// The optional `block_plan` object: the kernel that classifies each query tile's keys.
bool parseBlockPlan(Reader &r, const json &root, Manifest &m) {
  const json *j = r.member(root, "block_plan", "block_plan", false);
  if (!j)
    return true;
  if (!r.isObject(*j, "block_plan"))
    return false;
  BlockPlan plan;
  if (!r.getString(*j, "entry", "block_plan.entry", plan.entry) ||
      !parseBlock(r, *j, "block", "block_plan.block", plan.block) ||
      !parseGrid(r, *j, "grid", "block_plan.grid", m, plan.grid))
    return false;
  if (!isIdentifier(plan.entry) || plan.entry == m.entry ||
      (m.splitKV && plan.entry == m.splitKV->combineEntry))
    return r.fail("block_plan.entry", "must be a PTX symbol name of its own, got '" + plan.entry +
                                          "'");
  for (const GridAxis &g : plan.grid)
    if (g.splits)
      return r.fail("block_plan.grid", "cannot count KV splits");
  m.blockPlan = plan;
  return true;
}

/// The optional `tensor_maps` array: [{"arg": name, "box": [rows, columns]}, ...], each of a
/// 16-bit rank-4 input whose last axis is contiguous, 128-byte box rows (the swizzle's), at
/// most 256 rows (TMA's limit on a box axis). Not with a backward manifest.
bool parseTensorMaps(Reader &r, const json &root, Manifest &m) {
  const json *j = r.member(root, "tensor_maps", "tensor_maps", false);
  if (!j)
    return true;
  if (!j->is_array())
    return r.fail("tensor_maps", std::string("must be an array, got ") + j->type_name());
  if (j->size() > 8)
    return r.fail("tensor_maps", "holds at most 8 descriptors, got " + std::to_string(j->size()));
  if (m.backward && !j->empty())
    return r.fail("tensor_maps", "is not supported with backward kernels");
  for (size_t i = 0; i < j->size(); ++i) {
    std::string path = "tensor_maps[" + std::to_string(i) + "]";
    const json &e = (*j)[i];
    if (!r.isObject(e, path))
      return false;
    std::string name;
    if (!r.getString(e, "arg", path + ".arg", name))
      return false;
    TensorMap t;
    for (size_t a = 0; a < m.args.size(); ++a)
      if (m.args[a].name == name)
        t.arg = int(a);
    if (t.arg < 0)
      return r.fail(path + ".arg", "names no argument: '" + name + "' (arguments: " +
                                       m.argNames() + ")");
    const Arg &a = m.args[size_t(t.arg)];
    if (a.kind != ArgKind::Input || a.dims.size() != 4 || !a.unitStrideLast ||
        (a.dtype != DType::BF16 && a.dtype != DType::F16))
      return r.fail(path + ".arg", "must name a rank-4 f16/bf16 input with a contiguous last "
                                   "axis, got '" + name + "'");
    const json *box = r.getArray(e, "box", path + ".box");
    if (!box)
      return false;
    if (box->size() != 2)
      return r.fail(path + ".box", "must be [rows, columns]");
    if (!r.toInt((*box)[0], path + ".box[0]", 1, 256, t.rows) ||
        !r.toInt((*box)[1], path + ".box[1]", 64, 64, t.columns))
      return false;
    m.tensorMaps.push_back(t);
  }
  return true;
}

/// The optional `cluster`: [x, y, z] blocks per thread-block cluster, at most 8 in all (the
/// portable cluster size), only for sm_90 and newer.
bool parseCluster(Reader &r, const json &root, Manifest &m) {
  const json *j = r.member(root, "cluster", "cluster", false);
  if (!j)
    return true;
  if (!j->is_array() || j->size() != 3)
    return r.fail("cluster", "must be [x, y, z], blocks per cluster");
  int64_t blocks = 1;
  for (size_t a = 0; a < 3; ++a) {
    int64_t v;
    if (!r.toInt((*j)[a], "cluster[" + std::to_string(a) + "]", 1, 8, v))
      return false;
    m.cluster[a] = uint32_t(v);
    blocks *= v;
  }
  if (blocks > 8)
    return r.fail("cluster", "holds at most 8 blocks (the portable cluster size), got " +
                                 std::to_string(blocks));
  if (blocks > 1 && m.archMajor < 9)
    return r.fail("cluster", "needs an sm_90 or newer arch (thread-block clusters), got '" +
                                 m.arch + "'");
  return true;
}

/// The optional `split_kv` object. kv_seq need not be bound: paged variants hold keys in pages.
bool parseSplitKV(Reader &r, const json &root, Manifest &m) {
  const json *j = r.member(root, "split_kv", "split_kv", false);
  if (!j)
    return true;
  if (!r.isObject(*j, "split_kv"))
    return false;
  SplitKV s;
  if (!r.getString(*j, "combine_entry", "split_kv.combine_entry", s.combineEntry) ||
      !parseBlock(r, *j, "combine_block", "split_kv.combine_block", s.combineBlock) ||
      !r.getInt(*j, "max_splits", "split_kv.max_splits", 1, 65535, s.maxSplits) ||
      !r.getInt(*j, "splits", "split_kv.splits", 0, s.maxSplits, s.splits, false) ||
      !r.getInt(*j, "block_k", "split_kv.block_k", 1, INT32_MAX, s.blockK) ||
      !r.getInt(*j, "min_tiles_per_split", "split_kv.min_tiles_per_split", 1, INT32_MAX,
                s.minTilesPerSplit, false) ||
      !r.getBool(*j, "combine_takes_arguments", "split_kv.combine_takes_arguments",
                 s.combineTakesArguments, false))
    return false;
  if (!isIdentifier(s.combineEntry))
    return r.fail("split_kv.combine_entry", "must be a PTX symbol name, got '" + s.combineEntry + "'");
  if (s.combineEntry == m.entry)
    return r.fail("split_kv.combine_entry", "must differ from entry '" + m.entry + "'");
  if (!findRole(r, m, "batch", true, s.batch) || !findRole(r, m, "q_head", true, s.qHead) ||
      !findRole(r, m, "q_seq", true, s.qSeq) || !findRole(r, m, "value_dim", true, s.valueDim) ||
      !findRole(r, m, "kv_seq", false, s.kvSeq) ||
      !findArg(r, m, ArgKind::Output, "output", s.outputArg) ||
      !findArg(r, m, ArgKind::Lse, "lse", s.lseArg))
    return false;
  // Paged variants: kv_len = (pages per sequence, the block table's second dim) x page size.
  if (const json *paged = r.member(root, "paged", "paged", false)) {
    std::string table;
    if (!r.isObject(*paged, "paged") ||
        !r.getString(*paged, "block_table", "paged.block_table", table) ||
        !r.getInt(*paged, "page_size", "paged.page_size", 1, 65536, s.pageSize))
      return false;
    auto arg = std::find_if(m.args.begin(), m.args.end(),
                            [&](const Arg &a) { return a.name == table; });
    if (arg == m.args.end() || arg->dims.size() != 2)
      return r.fail("paged.block_table", "must name a rank-2 argument, got '" + table + "'");
    s.pagesPerSeq = arg->dims[1];
  }
  m.splitKV = s;  // before the combine grid, whose axes may use "splits"
  return parseGrid(r, *j, "combine_grid", "split_kv.combine_grid", m, m.splitKV->combineGrid);
}

bool parseHeader(Reader &r, const json &root, Manifest &m) {
  std::string format;
  if (!r.getString(root, "format", "format", format))
    return false;
  if (format != kManifestFormat)
    return r.fail("format", "is '" + format + "', but this runtime reads '" + kManifestFormat + "'");
  if (!r.getString(root, "variant", "variant", m.variant) ||
      !r.getString(root, "entry", "entry", m.entry) ||
      !r.getString(root, "arch", "arch", m.arch) ||
      !r.getString(root, "compiler", "compiler", m.compiler, false) ||
      !r.getString(root, "ptx", "ptx", m.ptx, false) ||
      !r.getString(root, "spec_hash", "spec_hash", m.specHash, false))
    return false;
  if (!isIdentifier(m.entry))
    return r.fail("entry", "must be a PTX symbol name, got '" + m.entry + "'");
  if (m.host())  // the CPU back end: no launch geometry
    return true;
  int64_t smem;
  if (!r.getInt(root, "dynamic_shared_memory", "dynamic_shared_memory", 0, UINT32_MAX, smem))
    return false;
  m.dynamicSharedMemory = uint32_t(smem);
  return parseArch(r, m);
}

/// nlohmann's messages start with "[json.exception.parse_error.101] ": keep what follows.
std::string stripExceptionId(const std::string &what) {
  size_t close = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? what.substr(close + 2)
                                                                             : what;
}

}  // namespace

bool parseManifest(std::string_view text, Manifest &out, std::string &error) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception &e) {
    error = "manifest: invalid JSON: " + stripExceptionId(e.what());
    return false;
  }
  if (!root.is_object()) {
    error = std::string("manifest: expected a JSON object, got ") + root.type_name();
    return false;
  }
  Manifest m;
  m.text.assign(text.data(), text.size());
  Reader r;
  // The nlohmann accessors used by Reader are type-checked first, so none of them throws; the
  // try only guards against a future edit that forgets to check.
  try {
    bool ok = parseHeader(r, root, m);
    bool launched = ok && !m.host();  // a CUDA kernel: block and grid; a host one has neither
    ok = ok && (!launched || parseBlock(r, root, "block", "block", m.block)) &&
         parseDims(r, root, m) && parseArgs(r, root, m) &&
         (!launched || (parseSplitKV(r, root, m) && parseBackward(r, root, m) && parseBlockPlan(r, root, m) &&
                        parseTensorMaps(r, root, m) && parseCluster(r, root, m) &&
                        parseGrid(r, root, "grid", "grid", m, m.grid)));
    if (!ok) {
      error = r.error;
      return false;
    }
  } catch (const json::exception &e) {
    error = "manifest: " + stripExceptionId(e.what());
    return false;
  }
  out = std::move(m);
  return true;
}

}  // namespace attnc::rt
