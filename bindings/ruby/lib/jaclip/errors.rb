module Jaclip
  # A failed libjaclip call: #status is the jaclip_status value, #message jaclip_last_error().
  class Error < StandardError
    attr_reader :status

    def initialize(message = nil, status = nil)
      super(message)
      @status = status || self.class::STATUS
    end

    STATUS = nil
  end

  {
    1 => :InvalidArgumentError, 2 => :OutOfMemoryError, 3 => :InputOutputError, 4 => :ModelFormatError,
    5 => :DeviceUnavailableError, 6 => :ShapeError, 7 => :ImageDecodeError, 8 => :ImageTooLargeError,
    9 => :InvalidUTF8Error, 10 => :TokenizerError, 11 => :BackendError, 12 => :IndexFormatError,
    13 => :NotFoundError, 14 => :InternalError, 15 => :ModelMismatchError
  }.each do |status, name|
    klass = Class.new(Error)
    klass.const_set(:STATUS, status)
    const_set(name, klass)
  end

  # A method was called on a closed Model, Tokenizer, Image or Index.
  class ClosedError < InvalidArgumentError; end

  # The loaded libjaclip is not a version this gem was written for.
  class VersionError < Error; end

  ERRORS_BY_STATUS = constants.map { |c| const_get(c) }
                              .select { |c| c.is_a?(Class) && c < Error && c.const_get(:STATUS) && c != ClosedError }
                              .to_h { |c| [c::STATUS, c] }
end
