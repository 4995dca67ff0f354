# The CUDA backend (SSLGATE_WITH_CUDA): a compiled static library sslgate::cuda next to the header-only core.
#   - architectures: CMAKE_CUDA_ARCHITECTURES, default "80;90" (A100, H100/H200); set e.g. -DCMAKE_CUDA_ARCHITECTURES=90
#     to halve the device-code compile time;
#   - nvcc gets -std=c++20 explicitly: CMake 3.25 with nvcc 13 ignores CUDA_STANDARD 20 (docs/TOOLCHAIN.md);
#   - cuDNN has no CMake config: found with find_library/find_path next to the toolkit. Without it the
#     library still builds; cuda::cudnn::* then throw (SSLGATE_WITH_CUDNN is 0).
#   - -DFMT_CONSTEVAL= -DFMT_USE_CONSTEXPR=1 for nvcc: its front end rejects fmt 9's consteval format-string
#     checks, and fmt turns constexpr off under __NVCC__, which g++ 12 then rejects (g++ TUs keep the checks);
#   - a few translation units only (nvcc is slow): src/cuda/{runtime,nn,conv,optim}.cu and src/cudnn/conv.cpp.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures of the sslgate CUDA backend" FORCE)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

find_path(SSLGATE_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/include)
find_library(SSLGATE_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib ${CUDAToolkit_LIBRARY_ROOT}/lib64)
if(SSLGATE_CUDNN_INCLUDE_DIR AND SSLGATE_CUDNN_LIBRARY)
  set(SSLGATE_WITH_CUDNN ON)
  message(STATUS "sslgate: cuDNN ${SSLGATE_CUDNN_LIBRARY}")
else()
  set(SSLGATE_WITH_CUDNN OFF)
  message(STATUS "sslgate: cuDNN not found; cuda::cudnn::* will throw")
endif()
message(STATUS "sslgate: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")

add_library(sslgate_cuda STATIC
  ${PROJECT_SOURCE_DIR}/src/cuda/runtime.cu
  ${PROJECT_SOURCE_DIR}/src/cuda/nn.cu
  ${PROJECT_SOURCE_DIR}/src/cuda/conv.cu
  ${PROJECT_SOURCE_DIR}/src/cuda/optim.cu
  ${PROJECT_SOURCE_DIR}/src/cudnn/conv.cpp)
add_library(sslgate::cuda ALIAS sslgate_cuda)
# Headers of the core only (fmt for the error messages); Eigen and xsimd stay out of .cu files.
target_include_directories(sslgate_cuda PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(sslgate_cuda PUBLIC fmt::fmt CUDA::cudart CUDA::cublas)
target_compile_features(sslgate_cuda PUBLIC cxx_std_20)
target_compile_definitions(sslgate_cuda PUBLIC SSLGATE_WITH_CUDA=1 SSLGATE_WITH_CUDNN=$<BOOL:${SSLGATE_WITH_CUDNN}>)
target_compile_options(sslgate_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 -DFMT_CONSTEVAL= -DFMT_USE_CONSTEXPR=1 --expt-relaxed-constexpr -diag-suppress 20012 -Xcompiler=-Wall>
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
if(SSLGATE_WITH_CUDNN)
  target_include_directories(sslgate_cuda PRIVATE ${SSLGATE_CUDNN_INCLUDE_DIR})
  target_link_libraries(sslgate_cuda PRIVATE ${SSLGATE_CUDNN_LIBRARY})
endif()
set_target_properties(sslgate_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF EXPORT_NAME cuda)
