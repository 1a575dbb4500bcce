#include "codegen/llvm_backend.h"

#include <fmt/format.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <mutex>

#include "codegen/ir_query.h"
#include "codegen/kernel_emitter.h"
#include "dsl/error.h"

namespace tigon::codegen {

namespace {

constexpr const char *kTriple = "nvptx64-nvidia-cuda";

// The GPU archs LLVM 19's NVPTX backend knows from Turing on, each with the PTX ISA version
// it is compiled for: the lowest LLVM supports for the arch, and at least 7.0 (tanh.approx.f32
// needs sm_75 and PTX 7.0).
struct Arch {
  const char *name;
  const char *ptxFeature;
};
constexpr Arch kArchs[] = {{"sm_75", "+ptx70"}, {"sm_80", "+ptx78"}, {"sm_86", "+ptx78"}, {"sm_87", "+ptx74"},
                           {"sm_89", "+ptx78"}, {"sm_90", "+ptx80"}, {"sm_90a", "+ptx80"}};

const Arch &findArch(const std::string &name) {
  std::string known;
  for (const Arch &a : kArchs) {
    if (name == a.name) return a;
    known += std::string(known.empty() ? "" : ", ") + a.name;
  }
  throw Error(fmt::format("unknown GPU arch '{}': the LLVM backend compiles for {}", name, known));
}

const llvm::Target &nvptxTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
  });
  std::string err;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(kTriple, err);
  if (!target) throw Error("LLVM has no NVPTX target: " + err);
  return *target;
}

void optimize(llvm::Module &m, llvm::TargetMachine &tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm);
  tm.registerPassBuilderCallbacks(pb);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
}

}  // namespace

PtxResult compileToPtx(const ir::Function &f, const std::string &arch, bool wantLlvmIR) {
  const Arch &target = findArch(arch);
  checkLowerable(f);

  llvm::LLVMContext ctx;  // one per compile: compiles may run on several threads at once
  llvm::Module m(f.name, ctx);
  m.setTargetTriple(kTriple);
  std::unique_ptr<llvm::TargetMachine> tm(nvptxTarget().createTargetMachine(
      kTriple, target.name, target.ptxFeature, llvm::TargetOptions(), std::nullopt, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!tm) throw Error(fmt::format("LLVM cannot create a target machine for {}", arch));
  m.setDataLayout(tm->createDataLayout());

  KernelEmitter(f, m).emit();
  std::string verifierOutput;
  llvm::raw_string_ostream verifierStream(verifierOutput);
  if (llvm::verifyModule(m, &verifierStream))
    throw Error(fmt::format("kernel {}: internal error, the generated LLVM IR is invalid: {}", describeKernel(f),
                            verifierOutput));

  optimize(m, *tm);
  PtxResult result;
  if (wantLlvmIR) {
    llvm::raw_string_ostream os(result.llvmIR);
    m.print(os, nullptr);
  }
  llvm::SmallString<0> ptx;
  llvm::raw_svector_ostream ptxStream(ptx);
  llvm::legacy::PassManager codegen;
  if (tm->addPassesToEmitFile(codegen, ptxStream, nullptr, llvm::CodeGenFileType::AssemblyFile))
    throw Error(fmt::format("LLVM cannot emit PTX for {}", arch));
  codegen.run(m);
  result.ptx = std::string(ptx.str());
  return result;
}

}  // namespace tigon::codegen
