// Backend cases: memory (allocate, upload, download), layout kernels (copy_box, reshape_copy, fill,
// scale) in every dtype they move, and parameters (init_param, fill_synthetic, sgd_step, adam_step).
#include "backend_cases.h"

namespace ffrt::cases {

namespace {

using L = Layout;

/// A case copying the box `sb` of a random tensor into the box `db` of another (initialized, so
/// that what copy_box must leave alone shows).
void copy_case(Case& c, DType dtype, const Shape& full, const Box& sb, L sl, const Box& db, L dl, bool accumulate) {
  auto random = [&] {
    return dtype == DType::f32 ? c.uniform(full) : dtype == DType::f64 ? c.uniform64(full) : c.ids(full, 1000);
  };
  const HostArray src = random(), init = random();
  const View s = c.in(src, sb, sl);
  const View d = c.inout("dst", init, db, dl);
  copy_box(c.ctx, s, d, accumulate);
}

}  // namespace

void add_memory_cases(Registry& r) {
  // upload copies the intersection of a dense host box and the buffer's box; download a box inside
  // the buffer's.
  for (DType dtype : {DType::f32, DType::i64, DType::f64}) {
    r.add(std::string("memory/upload_download_parts_") + dtype_name(dtype), [dtype](Case& c) {
      const Shape full{6, 10, 12};
      const HostArray t = dtype == DType::f32   ? c.uniform(full)
                          : dtype == DType::f64 ? c.uniform64(full)
                                                : c.ids(full, 1 << 20);
      const HostArray init = dtype == DType::f32   ? c.uniform(full)
                             : dtype == DType::f64 ? c.uniform64(full)
                                                   : c.ids(full, 1 << 20);
      const View dst = c.inout("dst", init, Box{{2, 0, 3}, {4, 9, 7}}, L::scrambled);
      const Box hb{{0, 2, 0}, {4, 6, 12}};
      HostArray host = host_box(t, hb);
      upload(c.ctx, host_view(host, full, hb), dst);
      const Box back_box{{3, 2, 4}, {2, 5, 5}};
      HostArray back(dtype, back_box.size);
      download(c.ctx, dst, host_view(back, full, back_box));
      c.record("downloaded", std::move(back));
    });
  }
  // allocate's memory is zero-filled, also when a cached block comes back.
  r.add("memory/allocate_zeroed", [](Case& c) {
    int k = 0;
    for (int64_t n : {4096, 1000, 4096, 77}) {
      {
        auto used = allocate(c.ctx, static_cast<size_t>(n) * 4);
        fill(c.ctx, flat_view(used.get(), DType::f32, n), 3.f);
      }
      auto fresh = allocate(c.ctx, static_cast<size_t>(n) * 4);
      HostArray h(DType::f32, {n});
      download(c.ctx, flat_view(fresh.get(), DType::f32, n), h.view());
      for (int64_t i = 0; i < n; ++i)
        if (h.f32()[i] != 0.f) throw Error("allocate returned memory that is not zero-filled");
      c.record("alloc" + std::to_string(k++), std::move(h));
    }
  });
}

void add_layout_cases(Registry& r) {
  const Shape t3{8, 12, 10};
  r.add("copy_box/pack", [=](Case& c) {
    copy_case(c, DType::f32, t3, whole(t3), L::scrambled, Box{{2, 3, 1}, {4, 6, 8}}, L::padded, false);
  });
  r.add("copy_box/unpack_accumulate", [=](Case& c) {
    copy_case(c, DType::f32, t3, Box{{2, 3, 1}, {4, 6, 8}}, L::padded, whole(t3), L::dense, true);
  });
  r.add("copy_box/overlap", [=](Case& c) {
    copy_case(c, DType::f32, t3, Box{{0, 4, 2}, {5, 8, 6}}, L::scrambled, Box{{3, 0, 0}, {5, 9, 5}}, L::scrambled,
              false);
  });
  r.add("copy_box/overlap_accumulate", [=](Case& c) {
    copy_case(c, DType::f32, t3, Box{{0, 4, 2}, {5, 8, 6}}, L::padded, Box{{3, 0, 0}, {5, 9, 5}}, L::scrambled, true);
  });
  r.add("copy_box/disjoint", [=](Case& c) {
    copy_case(c, DType::f32, t3, Box{{0, 0, 0}, {3, 12, 10}}, L::padded, Box{{3, 0, 0}, {5, 12, 10}}, L::padded, false);
  });
  r.add("copy_box/i64", [=](Case& c) {
    copy_case(c, DType::i64, t3, Box{{1, 1, 1}, {6, 10, 8}}, L::scrambled, Box{{0, 2, 0}, {5, 9, 10}}, L::padded,
              false);
  });
  r.add("copy_box/f64", [](Case& c) {
    copy_case(c, DType::f64, {2, 64}, Box{{0, 8}, {2, 40}}, L::padded, Box{{0, 0}, {2, 32}}, L::scrambled, false);
  });
  r.add("copy_box/f64_accumulate", [](Case& c) {
    copy_case(c, DType::f64, {2, 64}, Box{{0, 8}, {2, 40}}, L::dense, whole({2, 64}), L::dense, true);
  });
  r.add("copy_box/rank0",
        [](Case& c) { copy_case(c, DType::f32, {}, whole({}), L::dense, whole({}), L::dense, false); });
  r.add("copy_box/rank6", [](Case& c) {
    const Shape s{2, 3, 2, 3, 2, 5};
    copy_case(c, DType::f32, s, Box{{0, 1, 0, 0, 1, 1}, {2, 2, 2, 3, 1, 4}}, L::scrambled, whole(s), L::padded, false);
  });
  r.add("copy_box/dense_large", [](Case& c) {
    copy_case(c, DType::f32, {256, 1000}, whole({256, 1000}), L::dense, whole({256, 1000}), L::dense, false);
  });
  r.add("copy_box/rows_accumulate_shifted", [](Case& c) {
    copy_case(c, DType::f32, {256, 1000}, Box{{10, 0}, {200, 1000}}, L::shifted, Box{{0, 0}, {150, 1000}}, L::shifted,
              true);
  });

  // reshape_copy: element i of dst's tensor is element i of src's.
  r.add("reshape_copy/whole_dense", [](Case& c) {
    const HostArray src = c.uniform({4, 6, 10});
    reshape_copy(c.ctx, c.in(src), c.out("dst", {24, 10}), false);
  });
  r.add("reshape_copy/dst_part", [](Case& c) {
    const HostArray src = c.uniform({4, 6, 10});
    reshape_copy(c.ctx, c.in(src, L::scrambled), c.out("dst", {24, 10}, Box{{5, 2}, {12, 6}}, L::padded), false);
  });
  r.add("reshape_copy/src_part_accumulate", [](Case& c) {
    const HostArray src = c.uniform({4, 6, 10}), init = c.uniform({24, 10});
    reshape_copy(c.ctx, c.in(src, Box{{1, 0, 0}, {2, 6, 10}}, L::padded), c.inout("dst", init, L::scrambled), true);
  });
  r.add("reshape_copy/unflatten_rows", [](Case& c) {
    // A flat [8, 75] part holding rows 0-4 scatters into rows 2-6 of [8, 3, 5, 5]: rows 5 and 6
    // are not held and keep their values.
    const HostArray src = c.uniform({8, 75}), init = c.uniform({8, 3, 5, 5});
    reshape_copy(c.ctx, c.in(src, Box{{0, 0}, {5, 75}}, L::scrambled),
                 c.inout("dst", init, Box{{2, 0, 0, 0}, {5, 3, 5, 5}}, L::scrambled), false);
  });
  r.add("reshape_copy/flatten_cols", [](Case& c) {
    const HostArray src = c.uniform({8, 3, 5, 5});
    reshape_copy(c.ctx, c.in(src, Box{{1, 0, 0, 0}, {6, 3, 5, 5}}, L::padded),
                 c.out("dst", {8, 75}, Box{{2, 10}, {4, 50}}, L::scrambled), false);
  });
  r.add("reshape_copy/i64", [](Case& c) {
    const HostArray src = c.ids({6, 20}, 50000);
    reshape_copy(c.ctx, c.in(src, L::padded), c.out("dst", {120}, Box{{7}, {100}}, L::shifted, DType::i64), false);
  });

  // fill and scale.
  r.add("fill/f32_part", [](Case& c) {
    fill(c.ctx, c.out("v", {9, 7, 11}, Box{{2, 1, 3}, {5, 6, 7}}, L::scrambled), 0.25f);
  });
  r.add("fill/f64_part", [](Case& c) {
    fill(c.ctx, c.out("v", {2, 40}, Box{{0, 5}, {2, 30}}, L::padded, DType::f64), -1.5f);
  });
  r.add("fill/i64_part", [](Case& c) {
    fill(c.ctx, c.out("v", {16, 9}, Box{{3, 0}, {10, 9}}, L::scrambled, DType::i64), 7.f);
  });
  r.add("fill/dense_large_shifted", [](Case& c) { fill(c.ctx, c.out("v", {100003}, L::shifted), -2.f); });
  r.add("scale/part", [](Case& c) {
    const HostArray v = c.uniform({9, 7, 11});
    scale(c.ctx, c.inout("v", v, Box{{2, 1, 3}, {5, 6, 7}}, L::scrambled), -1.5f);
  });
  r.add("scale/dense_large", [](Case& c) { scale(c.ctx, c.inout("v", c.uniform({64, 1000})), 0.125f); });
  r.add("scale/rank0", [](Case& c) { scale(c.ctx, c.inout("v", c.uniform({})), 3.f); });
}

void add_param_cases(Registry& r) {
  // init_param and fill_synthetic: Philox by global element index.
  r.add("init_param/uniform_fan_in_part", [](Case& c) {
    init_param(c.ctx, Init::uniform_fan_in, 27, 17,
               c.out("w", {64, 3, 3, 3}, Box{{10, 0, 1, 0}, {30, 3, 2, 3}}, L::scrambled));
  });
  r.add("init_param/uniform_fan_in_whole", [](Case& c) {
    init_param(c.ctx, Init::uniform_fan_in, 1024, 3, c.out("w", {256, 1024}));
  });
  r.add("init_param/normal_part", [](Case& c) {
    init_param(c.ctx, Init::normal, 0, 5, c.out("w", {100, 32}, Box{{20, 8}, {50, 16}}, L::padded));
  });
  r.add("init_param/normal_whole", [](Case& c) {
    init_param(c.ctx, Init::normal, 0, 0x123456789abcULL, c.out("w", {1000, 64}));
  });
  r.add("init_param/zeros_ones_part", [](Case& c) {
    init_param(c.ctx, Init::zeros, 0, 1, c.out("zeros", {40, 9}, Box{{5, 2}, {30, 6}}, L::scrambled));
    init_param(c.ctx, Init::ones, 0, 1, c.out("ones", {40, 9}, Box{{0, 0}, {17, 9}}, L::shifted));
    init_param(c.ctx, Init::ones, 0, 1, c.out("ones_i64", {40}, Box{{3}, {30}}, L::padded, DType::i64));
  });
  // Global indices past 2^32 (boxes of tensors too big to hold): the 64-bit Philox counter.
  r.add("init_param/index_above_4g", [](Case& c) {
    init_param(c.ctx, Init::normal, 0, 9, c.out("normal", {70000, 70000}, Box{{69990, 69000}, {5, 600}}, L::padded));
    init_param(c.ctx, Init::uniform_fan_in, 70000, 9,
               c.out("uniform", {70000, 70000}, Box{{69000, 100}, {7, 300}}, L::scrambled));
  });
  r.add("fill_synthetic/index_above_4g", [](Case& c) {
    fill_synthetic(c.ctx, 21, 0, c.out("x", {70000, 70000}, Box{{69990, 69000}, {5, 600}}, L::padded));
    fill_synthetic(c.ctx, 22, 1000, c.out("labels", {70000, 70000}, Box{{69000, 5}, {3, 400}}, L::shifted, DType::i64));
  });
  r.add("fill_synthetic/f32_part", [](Case& c) {
    fill_synthetic(c.ctx, 99, 0, c.out("x", {16, 3, 8, 8}, Box{{3, 1, 2, 0}, {9, 2, 5, 8}}, L::scrambled));
  });
  r.add("fill_synthetic/f32_whole", [](Case& c) { fill_synthetic(c.ctx, 7, 0, c.out("x", {64, 784})); });
  r.add("fill_synthetic/labels_part", [](Case& c) {
    fill_synthetic(c.ctx, 11, 10, c.out("labels", {256}, Box{{13}, {200}}, L::padded, DType::i64));
  });
  r.add("fill_synthetic/tokens_2d", [](Case& c) {
    fill_synthetic(c.ctx, 12, 50257, c.out("ids", {8, 128}, Box{{2, 5}, {5, 100}}, L::scrambled, DType::i64));
  });

  // sgd_step: w, g and the momentum buffer each in a layout of its own.
  auto sgd_case = [](Case& c, const Shape& s, const Box& b, SgdAttrs a, bool momentum, bool first, L l) {
    const HostArray w = c.uniform(s), g = c.uniform(s), buf = c.uniform(s);
    const View wv = c.inout("w", w, b, l), gv = c.in(g, b, l == L::dense ? L::dense : L::padded);
    // With `first`, buf holds junk that the step must not read.
    const View bv = momentum ? c.inout("buf", buf, b, l == L::dense ? L::dense : L::scrambled) : none();
    sgd_step(c.ctx, a, wv, gv, momentum ? &bv : nullptr, first);
  };
  r.add("sgd/plain_whole", [=](Case& c) {
    sgd_case(c, {64, 100}, whole({64, 100}), {.lr = 0.1f}, false, false, L::dense);
  });
  r.add("sgd/weight_decay_part", [=](Case& c) {
    sgd_case(c, {20, 9, 7}, Box{{3, 2, 0}, {12, 6, 7}}, {.lr = 0.05f, .weight_decay = 1e-2f}, false, false,
             L::scrambled);
  });
  r.add("sgd/momentum_first", [=](Case& c) {
    sgd_case(c, {64, 100}, whole({64, 100}), {.lr = 0.1f, .momentum = 0.9f}, true, true, L::dense);
  });
  r.add("sgd/momentum_part", [=](Case& c) {
    sgd_case(c, {20, 9, 7}, Box{{3, 2, 0}, {12, 6, 7}},
             {.lr = 0.05f, .momentum = 0.9f, .dampening = 0.1f, .weight_decay = 5e-4f}, true, false, L::scrambled);
  });
  r.add("sgd/nesterov", [=](Case& c) {
    sgd_case(c, {33, 31}, Box{{1, 0}, {30, 31}},
             {.lr = 0.01f, .momentum = 0.9f, .weight_decay = 1e-4f, .nesterov = true}, true, false, L::padded);
  });
  r.add("sgd/momentum_large_shifted", [=](Case& c) {
    sgd_case(c, {100003}, whole({100003}), {.lr = 0.02f, .momentum = 0.8f}, true, false, L::shifted);
  });

  // adam_step: m and v from earlier steps (v >= 0).
  auto adam_case = [](Case& c, const Shape& s, const Box& b, AdamAttrs a, bool fresh, L l) {
    const HostArray w = c.uniform(s), g = c.uniform(s, -0.1f, 0.1f);
    const HostArray m = fresh ? HostArray(DType::f32, s) : c.uniform(s, -0.05f, 0.05f);
    const HostArray v = fresh ? HostArray(DType::f32, s) : c.uniform(s, 0.f, 0.01f);
    const L other = l == L::dense ? L::dense : L::scrambled;
    adam_step(c.ctx, a, c.inout("w", w, b, l), c.in(g, b, other), c.inout("m", m, b, other), c.inout("v", v, b, l));
  };
  r.add("adam/first_step", [=](Case& c) { adam_case(c, {64, 100}, whole({64, 100}), {}, true, L::dense); });
  r.add("adam/step5_part", [=](Case& c) {
    adam_case(c, {20, 9, 7}, Box{{3, 2, 0}, {12, 6, 7}}, {.lr = 3e-4f, .step = 5}, false, L::scrambled);
  });
  r.add("adam/l2_weight_decay", [=](Case& c) {
    adam_case(c, {33, 31}, Box{{1, 0}, {30, 31}}, {.weight_decay = 1e-2f, .step = 3}, false, L::padded);
  });
  r.add("adam/adamw", [=](Case& c) {
    adam_case(c, {33, 31}, whole({33, 31}),
              {.lr = 1e-3f, .beta2 = 0.98f, .weight_decay = 0.1f, .decoupled = true, .step = 7}, false, L::dense);
  });
  r.add("adam/large_shifted",
        [=](Case& c) { adam_case(c, {100003}, whole({100003}), {.lr = 1e-3f, .step = 2}, false, L::shifted); });
}

}  // namespace ffrt::cases
