module Jaclip
  # Owns one C pointer: freed once, by #close or the garbage collector, never while a call that uses
  # it runs in another thread, and never used after it is freed (ClosedError instead).
  class Handle
    def initialize(ptr, free, kind)
      @kind = kind
      @ptr = free ? FFI::AutoPointer.new(ptr, Native.method(free)) : ptr
      @lock = Mutex.new
      @users = 0
      @closing = false
    end

    def closed?
      @closing
    end

    def use
      ptr = enter
      begin
        yield ptr
      ensure
        leave
      end
    end

    # enter/leave bracket a call without a block (several handles held at once); use prefers #use.
    def enter
      @lock.synchronize do
        raise ClosedError.new("the #{@kind} is closed", 1) if @closing

        @users += 1
        @ptr
      end
    end

    def leave
      release if @lock.synchronize { (@users -= 1).zero? && @closing }
    end

    def close
      now = @lock.synchronize do
        next false if @closing

        @closing = true
        @users.zero?
      end
      release if now
      nil
    end

    private

    def release
      @ptr.free if @ptr.is_a?(FFI::AutoPointer)
      @ptr = nil
    end
  end
end
