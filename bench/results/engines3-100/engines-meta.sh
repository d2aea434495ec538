declare -- model_orig="/root/.cache/flexpage/tinyllama-1.1b-q8_0-seed7.gguf"
declare -- model_bytes="1169807904"
declare -- tokens="16"
declare -- threads="1"
declare -- no_repack_all="0"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="64" [preload]="96" [flexpage]="64" )
declare -A compute=([llama]="11.489" [flexpage]="21.12" )
declare -- compute_log="llama.cpp 11.403, flexpage run 21.12, llama.cpp 10.201, flexpage run 17.84, llama.cpp 11.489, flexpage run 18.35"
declare -A rates=([full]="1165003106" )
declare -- rate_log="full: 0.97 and 1.17 GB/s"
declare -a tier_name=([0]="full")
declare -a tier_bps=([0]="0")
declare -a tier_reps=([0]="5")
declare -a tier_budgets=([0]="100")
declare -a systems=([0]="llama-mmap" [1]="llama-preload")
declare -a budget_list=([0]="100" [1]="75" [2]="50" [3]="35" [4]="25")
declare -A plan_stream=([35]="725258076" [50]="549506253" [75]="258002125" [25]="843107533" [100]="1069548" )
declare -- started="2026-12-03 18:19 UTC"
declare -- elapsed="59"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="629afcd"
declare -- llama_commit="de3ff81"
