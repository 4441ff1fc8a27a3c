"""arq's two queue handshakes as single Redis scripts: enqueue (client side) and claim (worker side).

Why: arq 0.28 enqueues with WATCH, EXISTS, MULTI/PSETEX/ZADD/EXEC and claims a job with WATCH,
EXISTS, ZSCORE, MULTI/PSETEX/EXEC: about five round trips each, ~1.5 ms of a command's latency
here. A Lua script runs atomically in Redis, so each handshake keeps arq's guarantees (a job
id is queued once; a job is started by one worker) in one round trip. The keys, the job
encoding (`arq.jobs.serialize_job`) and the scores are arq's own, so arq's worker, its
`Job` API and the stock polling worker all read what these scripts write.
"""

from __future__ import annotations

from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix

# KEYS: job, result, queue, wake-up list, command view ("" for a job that is not a command)
# ARGV: job id, encoded job, score ms, job ttl ms, "received" view, view ttl s, wake ("1"/"0")
# Returns {queued (1/0), the command view as stored now (or false)}. A newly queued job's id is
# pushed to the wake-up list, so the worker can claim it without reading the queue first.
ENQUEUE = """
local queued = 0
if redis.call('exists', KEYS[1], KEYS[2]) == 0 then
    redis.call('psetex', KEYS[1], ARGV[4], ARGV[2])
    redis.call('zadd', KEYS[3], ARGV[3], ARGV[1])
    if KEYS[5] ~= '' then
        redis.call('set', KEYS[5], ARGV[5], 'EX', ARGV[6], 'NX')
    end
    queued = 1
end
if ARGV[7] == '1' and queued == 1 then
    redis.call('rpush', KEYS[4], ARGV[1])
    redis.call('ltrim', KEYS[4], 0, 999)
end
local view = false
if KEYS[5] ~= '' then
    view = redis.call('get', KEYS[5])
end
return {queued, view}
"""

# KEYS: in-progress, queue, in-flight hash. ARGV: job id, now ms, in-progress ttl ms, worker id.
# Returns the job's score if this worker may start it, else nil (running elsewhere, finished,
# or deferred to later), exactly the conditions of arq's Worker.start_jobs. The in-progress key
# holds the worker's id (arq only tests that it exists), and the in-flight hash maps the job to
# that worker, so RECLAIM can free the jobs of a worker that died.
CLAIM = """
if redis.call('exists', KEYS[1]) == 1 then
    return false
end
local score = redis.call('zscore', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
    return false
end
redis.call('psetex', KEYS[1], ARGV[3], ARGV[4])
redis.call('hset', KEYS[3], ARGV[1], ARGV[4])
return score
"""

# KEYS: in-flight hash. ARGV: alive-key prefix, in-progress key prefix, the caller's worker id,
# then the ids of the jobs the caller is running.
# Why: a worker killed with kill -9 leaves its jobs' in-progress keys behind, and arq would wait
# for them to expire (job timeout + 10 s, 40 s here) before running the jobs again. Every live
# worker refreshes a short-lived alive key (jobs/worker.py); an in-flight job whose worker's key
# has expired is freed here at once (its in-progress key deleted), so the next poll re-runs it.
# So is a job the caller holds but no longer runs (its end could not be recorded: Redis went
# away as it finished, and came back from its append-only file with the key). Entries whose
# in-progress key is gone (the job ended) are dropped. Returns the freed job ids.
RECLAIM = """
local running = {}
for i = 4, #ARGV do
    running[ARGV[i]] = true
end
local entries = redis.call('hgetall', KEYS[1])
local freed = {}
for i = 1, #entries, 2 do
    local job, owner = entries[i], entries[i + 1]
    local holder = redis.call('get', ARGV[2] .. job)
    if not holder then
        redis.call('hdel', KEYS[1], job)
    elseif holder == owner and ((owner == ARGV[3] and not running[job])
                                or redis.call('exists', ARGV[1] .. owner) == 0) then
        redis.call('del', ARGV[2] .. job)
        redis.call('hdel', KEYS[1], job)
        table.insert(freed, job)
    end
end
return freed
"""


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def result_key(job_id: str) -> str:
    return result_key_prefix + job_id


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id
