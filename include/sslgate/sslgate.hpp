#pragma once
// Umbrella header for users; the library's own headers include only what they use.
#include <sslgate/config.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/core/tensor.hpp>
#include <sslgate/autograd/gradcheck.hpp>
#include <sslgate/autograd/tape.hpp>
#include <sslgate/ops/batchnorm.hpp>
#include <sslgate/ops/conv2d.hpp>
#include <sslgate/ops/elementwise.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/normalize.hpp>
#include <sslgate/ops/pool.hpp>
#include <sslgate/ops/reduce.hpp>
#include <sslgate/ops/shape_ops.hpp>
#include <sslgate/ops/softmax.hpp>
#include <sslgate/optim/sgd.hpp>
