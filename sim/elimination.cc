// Node and edge elimination over an additive cost graph.
#include "sim/elimination.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "ir/diag.h"

namespace ffc {

CostGraph::Edge& CostGraph::add_edge(int from, int to) {
  Edge e;
  e.from = from;
  e.to = to;
  e.cost.assign(node.at(from).size() * node.at(to).size(), 0.0);
  edges.push_back(std::move(e));
  return edges.back();
}

double CostGraph::total(const std::vector<int>& choice) const {
  double t = 0;
  for (size_t i = 0; i < node.size(); ++i) t += node[i][choice[i]];
  for (const Edge& e : edges) t += e.cost[choice[e.from] * node[e.to].size() + choice[e.to]];
  return t;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// What an elimination decided, replayed backwards to set the eliminated nodes.
struct Record {
  enum Kind { node, leaf, alone } kind = alone;
  int j = -1;              ///< the eliminated node
  int a = -1, b = -1;      ///< its neighbours (node: both; leaf: a)
  std::vector<int> best;   ///< node: [ca * |Cb| + cb]; leaf: [ca]; alone: [0]
};

class Eliminator {
 public:
  explicit Eliminator(const CostGraph& g) : size_(g.node.size()), node_(g.node), adj_(g.node.size()) {
    for (size_t i = 0; i < node_.size(); ++i) size_[i] = static_cast<int>(node_[i].size());
    for (const CostGraph::Edge& e : g.edges) add(e.from, e.to, e.cost);
  }

  EliminationResult run(const CostGraph& g, const std::vector<int>& start) {
    EliminationResult r;
    r.edge_eliminations = merges_;
    std::vector<bool> alive(node_.size(), true);
    int left = static_cast<int>(node_.size());
    bool changed = true;
    while (changed && left > 1) {
      changed = false;
      for (size_t j = 0; j < node_.size() && left > 1; ++j) {
        if (!alive[j]) continue;
        const int deg = static_cast<int>(adj_[j].size());
        if (deg == 0) {
          alone(static_cast<int>(j));
        } else if (deg == 1) {
          leaf(static_cast<int>(j));
          ++r.leaf_eliminations;
        } else if (deg == 2) {
          middle(static_cast<int>(j));
          ++r.node_eliminations;
        } else {
          continue;
        }
        alive[j] = false;
        --left;
        changed = true;
      }
    }
    r.edge_eliminations = merges_;
    r.choice.assign(node_.size(), 0);
    if (left == 1) {
      for (size_t j = 0; j < node_.size(); ++j)
        if (alive[j]) r.choice[j] = argmin(node_[j]);
      r.reduced = true;
    } else {
      r.remaining = left;
      descend(alive, start, r.choice);
    }
    // Replay the eliminations backwards: each node's best config given its neighbours'.
    for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
      switch (it->kind) {
        case Record::node: r.choice[it->j] = it->best[r.choice[it->a] * size_[it->b] + r.choice[it->b]]; break;
        case Record::leaf: r.choice[it->j] = it->best[r.choice[it->a]]; break;
        case Record::alone: r.choice[it->j] = it->best[0]; break;
      }
    }
    r.cost = g.total(r.choice);
    return r;
  }

 private:
  /// An edge's cost as seen from `a`: [ca][cb].
  double cost(int a, int b, int ca, int cb) const {
    auto it = edge_.find({std::min(a, b), std::max(a, b)});
    const std::vector<double>& m = it->second;
    return a < b ? m[ca * size_[b] + cb] : m[cb * size_[a] + ca];
  }

  /// Adds cost [cf][ct] to the edge between `from` and `to`, merging with one already there.
  void add(int from, int to, const std::vector<double>& m) {
    FFC_CHECK(from != to);
    const int lo = std::min(from, to), hi = std::max(from, to);
    auto [it, fresh] = edge_.try_emplace({lo, hi}, std::vector<double>(size_[lo] * size_[hi], 0.0));
    if (!fresh) ++merges_;
    adj_[lo].insert(hi);
    adj_[hi].insert(lo);
    std::vector<double>& e = it->second;
    for (int cf = 0; cf < size_[from]; ++cf)
      for (int ct = 0; ct < size_[to]; ++ct) {
        const double v = m[cf * size_[to] + ct];
        if (from == lo) e[cf * size_[hi] + ct] += v;
        else e[ct * size_[hi] + cf] += v;
      }
  }

  void remove(int a, int b) {
    edge_.erase({std::min(a, b), std::max(a, b)});
    adj_[a].erase(b);
    adj_[b].erase(a);
  }

  static int argmin(const std::vector<double>& v) {
    int best = 0;
    for (size_t i = 1; i < v.size(); ++i)
      if (v[i] < v[best]) best = static_cast<int>(i);
    return best;
  }

  void alone(int j) { records_.push_back({Record::alone, j, -1, -1, {argmin(node_[j])}}); }

  void leaf(int j) {
    const int a = *adj_[j].begin();
    Record rec{Record::leaf, j, a, -1, std::vector<int>(size_[a], 0)};
    for (int ca = 0; ca < size_[a]; ++ca) {
      double best = kInf;
      for (int cj = 0; cj < size_[j]; ++cj) {
        const double v = cost(a, j, ca, cj) + node_[j][cj];
        if (v < best) best = v, rec.best[ca] = cj;
      }
      node_[a][ca] += best;
    }
    remove(a, j);
    records_.push_back(std::move(rec));
  }

  void middle(int j) {
    auto it = adj_[j].begin();
    const int a = *it++;
    const int b = *it;
    Record rec{Record::node, j, a, b, std::vector<int>(size_[a] * size_[b], 0)};
    std::vector<double> m(size_[a] * size_[b], 0.0);
    for (int ca = 0; ca < size_[a]; ++ca)
      for (int cb = 0; cb < size_[b]; ++cb) {
        double best = kInf;
        for (int cj = 0; cj < size_[j]; ++cj) {
          const double v = cost(a, j, ca, cj) + node_[j][cj] + cost(j, b, cj, cb);
          if (v < best) best = v, rec.best[ca * size_[b] + cb] = cj;
        }
        m[ca * size_[b] + cb] = best;
      }
    remove(a, j);
    remove(j, b);
    add(a, b, m);
    records_.push_back(std::move(rec));
  }

  /// Coordinate descent over the nodes left: each in turn takes its best config given its
  /// neighbours', until a sweep changes nothing.
  void descend(const std::vector<bool>& alive, const std::vector<int>& start, std::vector<int>& choice) const {
    for (size_t j = 0; j < node_.size(); ++j)
      if (alive[j]) choice[j] = start.at(j);
    for (int sweep = 0; sweep < 100; ++sweep) {
      bool moved = false;
      for (size_t j = 0; j < node_.size(); ++j) {
        if (!alive[j]) continue;
        const int jj = static_cast<int>(j);
        auto local = [&](int cj) {
          double v = node_[j][cj];
          for (int n : adj_[j]) v += cost(jj, n, cj, choice[n]);
          return v;
        };
        int best = choice[j];
        double best_v = local(best);
        for (int cj = 0; cj < size_[j]; ++cj) {
          const double v = local(cj);
          if (v < best_v) best_v = v, best = cj;
        }
        if (best != choice[j]) choice[j] = best, moved = true;
      }
      if (!moved) break;
    }
  }

  std::vector<int> size_;
  std::vector<std::vector<double>> node_;
  std::vector<std::set<int>> adj_;
  std::map<std::pair<int, int>, std::vector<double>> edge_;  ///< keyed (lower node, higher node)
  std::vector<Record> records_;
  int merges_ = 0;
};

}  // namespace

EliminationResult eliminate(const CostGraph& g, const std::vector<int>& start) {
  FFC_CHECK(start.size() == g.node.size());
  for (const std::vector<double>& n : g.node) FFC_CHECK(!n.empty());
  Eliminator e(g);
  return e.run(g, start);
}

std::vector<int> brute_force(const CostGraph& g) {
  std::vector<int> cur(g.node.size(), 0), best = cur;
  double best_cost = g.total(cur);
  while (true) {
    size_t i = 0;
    while (i < cur.size() && ++cur[i] == static_cast<int>(g.node[i].size())) cur[i++] = 0;
    if (i == cur.size()) return best;
    const double c = g.total(cur);
    if (c < best_cost) best_cost = c, best = cur;
  }
}

}  // namespace ffc
