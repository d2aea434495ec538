declare -- model_orig="/root/.cache/flexpage/llama2-7b-q4_0-seed7.gguf"
declare -- model_bytes="3792015136"
declare -- tokens="16"
declare -- threads="1"
declare -- no_repack_all="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="192" [preload]="224" [flexpage]="80" )
declare -A compute=([llama]="1.743" [flexpage]="3.60" )
declare -- compute_log="llama.cpp 1.743, flexpage run 2.93, llama.cpp 1.636, flexpage run 3.60, llama.cpp 1.641, flexpage run 3.48"
declare -A rates=([full]="1929593291" )
declare -- rate_log="full: 1.14 and 1.93 GB/s"
declare -a tier_name=([0]="full")
declare -a tier_bps=([0]="0")
declare -a tier_reps=([0]="5")
declare -a tier_budgets=([0]="100")
declare -a systems=([0]="llama-mmap" [1]="llama-preload")
declare -a budget_list=([0]="100" [1]="50" [2]="25")
declare -A plan_stream=([50]="1857573356" [25]="2802466161" [100]="1014088" )
declare -- started="2026-12-03 18:36 UTC"
declare -- elapsed="323"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="cf14683"
declare -- llama_commit="de3ff81"
