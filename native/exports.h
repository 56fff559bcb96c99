// The groups of exports the CPU addon registers (see addon.cc and src/native.ts).
#pragma once
#include <napi.h>

namespace mother {
void InitKernels(Napi::Env env, Napi::Object exports);
void InitHeader(Napi::Env env, Napi::Object exports);
void InitGguf(Napi::Env env, Napi::Object exports);
void InitStats(Napi::Env env, Napi::Object exports);
}  // namespace mother
