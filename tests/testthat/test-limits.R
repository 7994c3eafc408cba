# mem_limits(), mem_available(), mem_fits(), with_mem_limit().

# A fabricated system root: /proc files and a cgroup tree, as a container
# would show them. `v2` and `v1` are lists of directories (relative to the
# hierarchy's mount) and the files in each.
fake_root <- function(cgroup, mounts, tree, meminfo = NULL, env = parent.frame()) {
  root <- withr::local_tempdir(.local_envir = env)
  dir.create(file.path(root, "proc", "self"), recursive = TRUE)
  writeLines(cgroup, file.path(root, "proc", "self", "cgroup"))
  writeLines(mounts, file.path(root, "proc", "self", "mountinfo"))
  if (is.null(meminfo)) {
    meminfo <- c("MemTotal:       16000000 kB", "MemFree:         9000000 kB",
                 "MemAvailable:   10000000 kB", "SwapTotal:       2000000 kB",
                 "SwapFree:        1500000 kB")
  }
  writeLines(meminfo, file.path(root, "proc", "meminfo"))
  for (d in names(tree)) {
    path <- file.path(root, d)
    dir.create(path, recursive = TRUE, showWarnings = FALSE)
    files <- tree[[d]]
    for (f in names(files)) writeLines(files[[f]], file.path(path, f))
  }
  root
}

v2_root <- function(env = parent.frame()) {
  fake_root(env = env,
    cgroup = "0::/user.slice/job.scope",
    mounts = c("25 1 0:22 / / rw - ext4 /dev/vda1 rw",
               "31 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"),
    tree = list(
      "sys/fs/cgroup" = list("cgroup.controllers" = "memory"),
      "sys/fs/cgroup/user.slice" = list(
        "memory.max" = "800000000", "memory.high" = "max", "memory.current" = "700000000",
        "memory.stat" = c("anon 600000000", "inactive_file 0")),
      "sys/fs/cgroup/user.slice/job.scope" = list(
        "memory.max" = "1000000000", "memory.high" = "max", "memory.current" = "400000000",
        "memory.stat" = c("anon 300000000", "file 100000000", "inactive_file 100000000"))
    )
  )
}

v1_root <- function(limit = "2000000000", env = parent.frame()) {
  fake_root(env = env,
    cgroup = c("5:cpu,cpuacct:/docker/abc", "4:memory:/docker/abc", "0::/"),
    mounts = c("25 1 0:22 / / rw - overlay overlay rw",
               "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
               "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"),
    tree = list(
      "sys/fs/cgroup/memory" = list(
        "memory.limit_in_bytes" = "9223372036854771712", "memory.usage_in_bytes" = "5000000000",
        "memory.stat" = "total_inactive_file 0"),
      "sys/fs/cgroup/memory/docker" = list(
        "memory.limit_in_bytes" = "9223372036854771712", "memory.usage_in_bytes" = "1500000000",
        "memory.stat" = "total_inactive_file 500000000"),
      "sys/fs/cgroup/memory/docker/abc" = list(
        "memory.limit_in_bytes" = limit, "memory.usage_in_bytes" = "1500000000",
        "memory.memsw.limit_in_bytes" = "3000000000", "memory.memsw.usage_in_bytes" = "1600000000",
        "memory.stat" = c("cache 600000000", "rss 900000000", "inactive_file 400000000",
                          "total_inactive_file 500000000")),
      "sys/fs/cgroup/unified" = list("cgroup.controllers" = "")
    )
  )
}

test_that("cgroup v2: every limit of the chain, usage without inactive cache, the ancestor binds", {
  withr::local_options(memkit.sysroot = v2_root())
  l <- mem_limits()
  expect_s3_class(l, "mem_limits")
  own <- l[l$limit == "cgroup v2 memory.max" & grepl("job.scope$", l$path), ]
  expect_equal(as.numeric(own$value), 1e9)
  expect_equal(as.numeric(own$used), 3e8)   # 400 MB less 100 MB inactive file cache
  expect_equal(as.numeric(own$room), 7e8)
  up <- l[l$limit == "cgroup v2 memory.max" & grepl("user.slice$", l$path), ]
  expect_equal(as.numeric(up$room), 1e8)
  expect_true(up$binds)
  expect_identical(sum(l$binds), 1L)
  # memory.high of the own cgroup is listed without a limit; the parent's is not
  high <- l[l$limit == "cgroup v2 memory.high", ]
  expect_identical(nrow(high), 1L)
  expect_true(is.infinite(as.numeric(high$value)))
  sys <- l[l$limit == "MemAvailable", ]
  expect_equal(as.numeric(sys$room), 1e7 * 1024)
  expect_equal(as.numeric(sys$value), 1.6e7 * 1024)
  sw <- l[l$limit == "swap", ]
  expect_false(sw$counts)
  expect_equal(as.numeric(sw$used), 5e5 * 1024)

  a <- mem_available()
  expect_s3_class(a, "mem_available")
  expect_equal(as.numeric(a), 1e8)
  expect_identical(attr(a, "limit"), "cgroup v2 memory.max")
  rooms <- as.numeric(l$room[l$counts & !is.na(l$room)])
  expect_true(all(as.numeric(a) <= rooms))
})

test_that("cgroup v1: the limit, usage without inactive cache, memory and swap; unlimited levels skipped", {
  withr::local_options(memkit.sysroot = v1_root())
  l <- mem_limits()
  v1 <- l[l$limit == "cgroup v1 memory.limit_in_bytes", ]
  expect_identical(nrow(v1), 1L) # the unlimited ancestors are not listed
  expect_equal(as.numeric(v1$value), 2e9)
  expect_equal(as.numeric(v1$used), 1e9)
  expect_equal(as.numeric(v1$room), 1e9)
  expect_true(v1$binds)
  sw <- l[l$limit == "cgroup v1 memory.memsw.limit_in_bytes", ]
  expect_equal(as.numeric(sw$room), 3e9 - (1.6e9 - 5e8))
  # the empty v2 hierarchy adds nothing
  expect_false(any(grepl("^cgroup v2", l$limit)))
  a <- mem_available()
  expect_equal(as.numeric(a), 1e9)
  expect_true(all(as.numeric(a) <= as.numeric(l$room[l$counts & !is.na(l$room)])))
})

test_that("cgroup v1 without a limit (as on this machine) is listed with its usage and never binds", {
  withr::local_options(memkit.sysroot = v1_root(limit = "9223372036854771712"))
  l <- mem_limits()
  v1 <- l[l$limit == "cgroup v1 memory.limit_in_bytes", ]
  expect_true(is.infinite(as.numeric(v1$value)))
  expect_equal(as.numeric(v1$used), 1e9)
  expect_false(v1$binds)
  # memory and swap still limits
  expect_identical(l$limit[l$binds], "cgroup v1 memory.memsw.limit_in_bytes")
})

test_that("a tree that says nothing leaves the system's memory and the process's limits", {
  root <- withr::local_tempdir()
  withr::local_options(memkit.sysroot = root)
  l <- mem_limits()
  expect_false(any(grepl("cgroup|MemAvailable", l$limit)))
  expect_true(all(c("RLIMIT_AS", "mem.maxVSize()") %in% l$limit) || .Platform$OS.type == "windows")
})

test_that("on the live machine the process's own cgroup is shown with its usage", {
  skip_if_not_linux()
  cg <- memkit:::cgroup_dirs("")
  skip_if(is.null(cg$v1) && is.null(cg$v2), "no memory cgroup")
  l <- mem_limits()
  rows <- l[grepl("^cgroup", l$limit), ]
  expect_gte(nrow(rows), 1L)
  expect_true(all(dir.exists(rows$path)))
  expect_true(all(as.numeric(rows$used) > 0))
  a <- mem_available()
  l2 <- mem_limits()
  # The live figures move between readings (other processes free and take
  # memory): mem_available() is read between two tables and is above
  # neither's binding room by more than what moved meanwhile.
  room <- function(l) min(as.numeric(l$room[l$counts & !is.na(l$room)]))
  moved <- abs(room(l2) - room(l))
  expect_lte(as.numeric(a), max(room(l), room(l2)) + moved)
  expect_gt(as.numeric(a), 0)
})

test_that("R's own limits count when set", {
  skip_on_cran()
  res <- in_child(function() {
    mem.maxVSize(4000)
    l <- memkit::mem_limits()
    r <- l[l$limit == "mem.maxVSize()", ]
    c(value = as.numeric(r$value), used = as.numeric(r$used))
  })
  expect_true(res$ok)
  expect_equal(res$value[["value"]], 4000 * 2^20)
  expect_gt(res$value[["used"]], 0)
})

test_that("mem_fits() compares with the binding room", {
  withr::local_options(memkit.sysroot = v2_root())
  yes <- mem_fits("50 MB")
  expect_true(isTRUE(unclass(yes)) && as.logical(yes))
  expect_equal(as.numeric(attr(yes, "headroom")), 5e7)
  expect_identical(attr(yes, "limit"), "cgroup v2 memory.max")
  no <- mem_fits(2e8)
  expect_false(unclass(no))
  expect_equal(as.numeric(attr(no, "headroom")), -1e8)
  m <- mem_fits(nrow = 1000, ncol = 1000)
  expect_equal(as.numeric(attr(m, "need")), 8e6)
  expect_true(unclass(m))
  expect_equal(as.numeric(attr(mem_fits(nrow = 1e4, ncol = 1e4, type = "integer"), "need")), 4e8)
  expect_false(unclass(mem_fits(nrow = 1e4, ncol = 1e4, type = "integer")))
  expect_output(print(no), "does not fit")
  expect_output(print(yes), "fits, leaving")
})

test_that("bad arguments are classed errors", {
  expect_error(mem_fits("lots"), class = "memkit_error_argument")
  expect_error(mem_fits(-1), class = "memkit_error_argument")
  expect_error(mem_fits(nrow = 10), class = "memkit_error_argument")
  expect_error(mem_fits(1, nrow = 1, ncol = 1), class = "memkit_error_argument")
  expect_error(mem_fits(nrow = 1, ncol = 1, type = "list"), class = "memkit_error_argument")
  withr::local_options(memkit.sysroot = 1)
  expect_error(mem_limits(), class = "memkit_error_argument")
  skip_if_unsupported("with_mem_limit")
  expect_error(with_mem_limit(1, "lots"), class = "memkit_error_argument")
  expect_error(with_mem_limit(1, "1 GB", of = "system"), class = "memkit_error_argument")
  expect_error(with_mem_limit(1, "1 GB", interval = 0), class = "memkit_error_argument")
})

test_that("with_mem_limit() returns the value of an expression under the limit, visible or not", {
  skip_if_interrupts_ignored()
  skip_on_os("windows")
  expect_identical(with_mem_limit(sum(1:10), "4 GB"), 55L)
  expect_invisible(with_mem_limit(z <- 1, "4 GB"))
  expect_visible(with_mem_limit(1, "4 GB"))
  expect_identical(with_mem_limit(with_mem_limit(2, "4 GB"), "5 GB"), 2)
  f <- function() with_mem_limit(stop("inner failure"), "4 GB")
  expect_error(f(), "inner failure")
})

test_that("with_mem_limit() on Windows is unsupported", {
  skip_if_not(.Platform$OS.type == "windows")
  expect_error(with_mem_limit(1, "1 GB"), class = "memkit_error_unsupported")
})

test_that("with_mem_limit() stops 8 GB of allocation at 500 MB; the session goes on as before", {
  skip_if_interrupts_ignored()
  skip_if_other_allocator() # resident sizes are the sanitizer's
  skip_on_os("windows")
  skip_on_cran()
  skip_if_valgrind()
  res <- in_child(function() {
    nt <- function() length(list.files("/proc/self/task"))
    nf <- function() length(list.files("/proc/self/fd"))
    loadNamespace("memkit") # and cli's thread with it
    before <- c(nt(), nf())
    e <- tryCatch(memkit::with_mem_limit(x <- lapply(1:1e4, function(i) numeric(1e5)), "500 MB"),
                  error = function(e) e)
    hwm <- as.numeric(sub("\\D*(\\d+).*", "\\1", grep("^VmHWM", readLines("/proc/self/status"), value = TRUE))) * 1024
    after <- c(nt(), nf())
    # the session allocates and runs, and no interrupt is left over
    y <- numeric(5e7); y[] <- 1
    for (i in 1:2e6) NULL
    list(class = class(e), limit = as.numeric(e$limit), value = as.numeric(e$value),
         peak = as.numeric(e$peak), hwm = hwm, prof = class(e$profile),
         samples = nrow(e$profile$samples), exists = exists("x"), before = before,
         after = after, sum = sum(y), msg = conditionMessage(e))
  })
  expect_true(res$ok)
  v <- res$value
  expect_identical(v$class[[1L]], "memkit_error_memory_limit")
  expect_equal(v$limit, 5e8)
  expect_gt(v$value, 5e8)
  expect_lte(v$hwm, 6e8)
  expect_lte(v$peak, 6e8)
  expect_identical(v$prof, "mem_profile")
  expect_gt(v$samples, 2L)
  expect_false(v$exists)
  expect_identical(v$after, v$before)
  expect_equal(v$sum, 5e7)
  expect_match(v$msg, "Memory limit of 500 MB passed: resident memory reached 5")
})

test_that("a user's interrupt stays an interrupt; an outer limit is the outer's", {
  skip_if_interrupts_ignored()
  skip_on_os("windows")
  skip_on_cran()
  res <- in_child(function() {
    user <- tryCatch(memkit::with_mem_limit({
      tools::pskill(Sys.getpid(), tools::SIGINT)
      Sys.sleep(2)
      "not interrupted"
    }, "8 GB"), interrupt = function(e) "interrupt",
    memkit_error_memory_limit = function(e) "limit")
    outer <- tryCatch(memkit::with_mem_limit(
      memkit::with_mem_limit(x <- lapply(1:1e4, function(i) numeric(1e5)), "8 GB"), "300 MB"),
      memkit_error_memory_limit = function(e) as.numeric(e$limit))
    inner <- tryCatch(memkit::with_mem_limit(
      memkit::with_mem_limit(x <- lapply(1:1e4, function(i) numeric(1e5)), "300 MB"), "8 GB"),
      memkit_error_memory_limit = function(e) as.numeric(e$limit))
    swallowed <- tryCatch(memkit::with_mem_limit(
      tryCatch(x <- lapply(1:1e4, function(i) numeric(1e5)), interrupt = function(e) "swallowed"),
      "300 MB"), memkit_error_memory_limit = function(e) "limit")
    list(user = user, outer = outer, inner = inner, swallowed = swallowed)
  })
  expect_true(res$ok)
  expect_identical(res$value$user, "interrupt")
  expect_equal(res$value$outer, 3e8)
  expect_equal(res$value$inner, 3e8)
  expect_identical(res$value$swallowed, "limit")
})

test_that("of = \"cgroup\" watches the cgroup's usage", {
  skip_if_interrupts_ignored()
  skip_if_not_linux()
  skip_on_cran()
  cg <- memkit:::cgroup_dirs("")
  skip_if(is.null(cg$v1) && is.null(cg$v2), "no memory cgroup")
  expect_identical(with_mem_limit(1, "1 TB", of = "cgroup"), 1)
  # A limit below the current usage stops at once.
  expect_error(with_mem_limit(Sys.sleep(2), 1, of = "cgroup"), class = "memkit_error_memory_limit")
  withr::local_options(memkit.sysroot = withr::local_tempdir())
  expect_error(with_mem_limit(1, "1 GB", of = "cgroup"), class = "memkit_error_unsupported")
})

test_that("print methods say it in words (snapshots)", {
  skip_on_cran()
  withr::local_options(memkit.sysroot = v2_root())
  l <- mem_limits()
  expect_snapshot({
    l[!grepl("^RLIMIT", l$limit), ]
    mem_available()
    mem_fits("50 MB")
    mem_fits("1 GB")
  })
  skip_if_unsupported("with_mem_limit")
  expect_snapshot(error = TRUE, {
    mem_fits("lots")
    with_mem_limit(1, "1 GB", of = "system")
  })
})
