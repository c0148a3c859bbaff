// The one definition of a linear recurrence's score: dot(q, k) times factors that each read the
// query position i or the key position j, not both (and not dot). Sema decides with it whether
// a variant is a recurrence (its diagnostics and the float64 references' query/key factors, on
// the AST); attn-chunk splits the score region with it (on the IR). Header-only and free of
// MLIR and of the AST: each caller adapts its own expression nodes.
#pragma once

#include <cstddef>
#include <vector>

namespace attnc {

/// The shape of an expression node as the recurrence form sees it.
enum class FormShape { Dot, Mul, Div, Neg, Other };

/// One factor of the score: `factor` is an operand of `product` (a multiplication, or the
/// divisor of a division when `divides`), beside `keep`; `key` if it reads j (then not i).
template <typename Node>
struct FormFactor {
  Node factor, product, keep;
  bool divides = false, key = false;
};

/// Splits `root` into dot and its factors; false when it is not of the form. An `Adapter`
/// provides, for its `Node` type:
///   FormShape shape(Node)          Dot, a float Mul, Div, Neg or Other
///   Node lhs(Node), rhs(Node)      the operands (Neg: lhs)
///   bool readsI(Node), readsJ(Node), readsDot(Node)
/// `factors` lists every factor (a product of factors that each read one side is split into
/// them); `negate` tells whether the negations are odd.
template <typename Adapter, typename Node>
class RecurrenceForm {
public:
  explicit RecurrenceForm(Adapter &a) : a(a) {}

  bool run(Node root) {
    factors.clear();
    negate = false;
    return linear(root, false);
  }

  std::vector<FormFactor<Node>> factors;
  bool negate = false;

private:
  Adapter &a;

  /// `v` is dot times one-sided factors: dot, a product with one (either side), a quotient by
  /// one, or a negation.
  bool linear(Node v, bool divides) {
    switch (a.shape(v)) {
    case FormShape::Dot:
      return true;
    case FormShape::Neg:
      negate = !negate;
      return linear(a.lhs(v), divides);
    case FormShape::Mul:
      for (bool swap : {false, true}) {
        Node x = swap ? a.rhs(v) : a.lhs(v), f = swap ? a.lhs(v) : a.rhs(v);
        std::size_t mark = factors.size();
        bool sign = negate;
        if (linear(x, divides) && factor(f, x, v, divides))
          return true;
        factors.resize(mark);
        negate = sign;
      }
      return false;
    case FormShape::Div:
      return linear(a.lhs(v), divides) && factor(a.rhs(v), a.lhs(v), v, !divides);
    case FormShape::Other:
      return false;
    }
    return false;
  }

  /// `f`, the operand of `product` beside `keep`, reads i or j but not both (a product may mix
  /// factors that each do) and not dot.
  bool factor(Node f, Node keep, Node product, bool divides) {
    if (a.readsDot(f))
      return false;
    bool readsI = a.readsI(f), readsJ = a.readsJ(f);
    if (!readsI || !readsJ) {
      factors.push_back({f, product, keep, divides, readsJ});
      return true;
    }
    return a.shape(f) == FormShape::Mul && factor(a.lhs(f), a.rhs(f), f, divides) &&
           factor(a.rhs(f), a.lhs(f), f, divides);
  }
};

}  // namespace attnc
