require "json"
require "net/http"
require "securerandom"
require "uri"
require "jaclip"

module Jaclip
  # A small client for `jaclip serve` (docs/serve.md), on Net::HTTP:
  #
  #   require "jaclip/client"
  #   c = Jaclip::Client.new("http://127.0.0.1:8080")
  #   c.search(text: "海辺の夕日", k: 5).each { |hit| puts "#{hit.score.round(3)} #{hit.label}" }
  #
  # Answers are the gem's own types (Arrays of Floats, Hit, Prediction). A refusal raises the gem's
  # error for the library status the server names (Jaclip::ImageDecodeError, ...), or Client::ServeError
  # for the server's own (SERVE_BUSY, SERVE_UNAUTHORIZED, ...). Each call opens its own connection.
  class Client
    # A refusal by the server itself: #http is the HTTP status, #name the error's status name.
    class ServeError < Jaclip::Error
      attr_reader :http, :name

      def initialize(message, http, name)
        super(message)
        @http = http
        @name = name
      end
    end

    STATUS_CODES = (1..63).each_with_object({}) do |code, map|
      name = Native.jaclip_status_string(code).to_s.split(":", 2).first
      map[name] = code if name&.start_with?("JACLIP_ERROR_")
    end.freeze

    def initialize(url = "http://127.0.0.1:8080", token: ENV.fetch("JACLIP_SERVE_TOKEN", nil), timeout: 30)
      @uri = URI(url.chomp("/"))
      @token = token.to_s.empty? ? nil : token
      @timeout = timeout
    end

    def healthz = json(:get, "/healthz")["status"] == "ok"
    def info = json(:get, "/v1/info")
    def indexes = json(:get, "/v1/indexes")["indexes"]

    # [n][D] Floats: the library's text features (not normalised).
    def embed_texts(texts)
      raise TypeError, "expected an Array of texts" unless texts.is_a?(Array)

      float32(json(:post, "/v1/embed/text", { "texts" => texts })["embeddings"])
    end

    # [n][D] Floats for an Array of image paths or Strings holding encoded image bytes (binary encoding).
    def embed_images(images)
      raise TypeError, "expected an Array of images" unless images.is_a?(Array)

      body, type = multipart(images.each_with_index.map { |x, i| ["image", i.to_s, image_bytes(x)] })
      float32(JSON.parse(request(:post, "/v1/embed/image", body, type))["embeddings"])
    end

    # [Prediction], best first; no labels: the server's --classifier.
    def classify(image, labels: [], templates: [], scale: nil)
      fields = [["image", "image", image_bytes(image)]]
      fields += labels.map { |l| ["label", l] }
      fields += Array(templates).map { |t| ["template", t] }
      fields << ["scale", scale.to_f.to_s] if scale
      body, type = multipart(fields)
      JSON.parse(request(:post, "/v1/classify", body, type))["labels"].map do |x|
        Prediction.new(x["label"], x["probability"])
      end
    end

    # [Hit], best first, by exactly one of text:, embedding: (D numbers), row: (of the index) or image:.
    # Filter, then rank, as Index#search: offset: (pages), folder:, after: / before: (dates
    # "YYYY-MM-DD[THH:MM[:SS]]" in the server's local time, against each row's capture time), types:
    # (extensions); exact: true never uses the server's INDEX.ann.
    def search(text: nil, embedding: nil, row: nil, image: nil, k: 10, threshold: nil, index: nil, offset: 0,
               folder: nil, after: nil, before: nil, types: nil, exact: false)
      given = { "text" => text, "embedding" => embedding, "row" => row }.compact
      raise ArgumentError, "give exactly one of text:, embedding:, row: or image:" unless given.size + (image ? 1 : 0) == 1

      options = { "k" => k, "threshold" => threshold, "index" => index, "offset" => (offset if offset.positive?),
                  "folder" => folder, "after" => after, "before" => before, "types" => (Array(types) if types),
                  "exact" => (true if exact) }.compact
      results = if image
                  query = options.merge({ "types" => options["types"]&.join(","), "exact" => (1 if exact) }.compact)
                  JSON.parse(request(:post, "/v1/search", image_bytes(image), "application/octet-stream",
                                     query: query))["results"]
                else
                  json(:post, "/v1/search", given.merge(options))["results"]
                end
      results.map { |r| Hit.new(r["label"], r["score"], r["row"]) }
    end

    # JPEG bytes of a row's photo, size x size.
    def thumbnail(index, row, size: 160)
      request(:get, "/v1/thumbnail", query: { "index" => index, "row" => row, "size" => size })
    end

    private

    # The server writes float32 features with 9 digits: read back, they are those float32 values.
    def float32(rows) = rows.map { |row| row.pack("e*").unpack("e*") }

    def image_bytes(image)
      image.is_a?(String) && image.encoding == Encoding::BINARY ? image : File.binread(image.to_s)
    end

    def json(method, path, payload = nil)
      body = payload && JSON.generate(payload)
      JSON.parse(request(method, path, body, payload && "application/json"))
    end

    def multipart(fields)
      boundary = SecureRandom.hex(16)
      body = fields.map do |f|
        head = if f.size == 2
                 "Content-Disposition: form-data; name=\"#{f[0]}\"\r\n\r\n"
               else
                 "Content-Disposition: form-data; name=\"#{f[0]}\"; filename=\"#{f[1]}\"\r\n" \
                   "Content-Type: application/octet-stream\r\n\r\n"
               end
        "--#{boundary}\r\n".b + head.b + (f.size == 2 ? f[1] : f[2]).b + "\r\n".b
      end.join.b + "--#{boundary}--\r\n".b
      [body, "multipart/form-data; boundary=#{boundary}"]
    end

    def request(method, path, body = nil, type = nil, query: nil)
      uri = @uri.dup
      uri.path = @uri.path + path
      uri.query = URI.encode_www_form(query) if query
      req = (method == :get ? Net::HTTP::Get : Net::HTTP::Post).new(uri)
      req["Content-Type"] = type if type
      req["Authorization"] = "Bearer #{@token}" if @token
      req.body = body if body
      res = Net::HTTP.start(uri.host, uri.port, open_timeout: @timeout, read_timeout: @timeout) { |h| h.request(req) }
      return res.body if res.is_a?(Net::HTTPSuccess)

      raise refusal(res)
    end

    def refusal(res)
      err = JSON.parse(res.body)["error"]
      code = STATUS_CODES[err["status"]]
      return Jaclip::ERRORS_BY_STATUS.fetch(code, Jaclip::Error).new(err["message"], code) if code

      ServeError.new(err["message"], res.code.to_i, err["status"])
    rescue JSON::ParserError, NoMethodError, TypeError
      ServeError.new("HTTP #{res.code}: #{res.body.to_s[0, 200]}", res.code.to_i, "")
    end
  end
end
